"""Generate bnlab's golden test fixtures with PyTorch.

Run from the repository root with Debian's interpreter (the one that has torch):

    /usr/bin/python3 tools/golden/make_fixtures.py

Writes into tests/fixtures/ (created if missing). Everything is deterministic:
torch.set_num_threads(1), and each file re-seeds torch.manual_seed(<its own seed>) (the seed
is in the file's metadata as "seed", or "init_seed" for seed_net). All tensors are float32
("F32") except the BN counters num_batches_tracked*, which are int64 ("I64") of shape [].
Integer class labels are stored as F32 holding exact integer values. Every upstream
gradient dy is randn of y's shape and every backward is of loss = (y * dy).sum(), so dx,
dweight, dbias are vector-Jacobian products with dy. All metadata values are strings.
Format: see safetensors_io.py.

=============================================================================================
BatchNorm fixtures: bn_<variant>.safetensors
=============================================================================================
  variant              module                                           input shape
  bn2d_default         BatchNorm2d(3)                                   (4,3,5,6)
  bn1d_nc              BatchNorm1d(5)                                   (8,5)
  bn1d_ncl             BatchNorm1d(3)                                   (4,3,7)
  bn2d_noaffine        BatchNorm2d(3, affine=False)                     (4,3,5,6)
  bn2d_notrack         BatchNorm2d(3, track_running_stats=False)        (4,3,5,6)
  bn2d_momentum_none   BatchNorm2d(3, momentum=None)  (cumulative avg)  (4,3,5,6)
  bn2d_eps_momentum    BatchNorm2d(3, eps=1e-3, momentum=0.3)           (4,3,5,6)
  bn2d_large_mean      BatchNorm2d(3); every input = 1e4 + 1e-2*randn   (4,3,5,6)

Metadata: seed, kind ("1d"|"2d"), eps (repr of the float, e.g. "1e-05"), momentum (repr,
e.g. "0.1", or "none"), affine ("true"|"false"), track_running_stats ("true"|"false"),
steps ("3").

Tensors (C = channels):
  weight, bias                       (C,)  initial affine parameters       [affine only]
                                           weight = 1 + 0.1*randn, bias = 0.1*randn
  for k in 0, 1, 2 (module.train(); parameters never updated between steps):
    x_k, y_k, dy_k, dx_k             input shape
    dweight_k, dbias_k               (C,)                                  [affine only]
    running_mean_k, running_var_k    (C,)  buffers after step k            [tracking only]
    num_batches_tracked_k            []    I64, after step k (= k+1)       [tracking only]
  then module.eval():
    x_eval, y_eval, dy_eval, dx_eval input shape
    dweight_eval, dbias_eval         (C,)                                  [affine only]
  Initial buffers (before step 0) are PyTorch's defaults: running_mean = 0, running_var = 1,
  num_batches_tracked = 0. With track_running_stats=False (bn2d_notrack) there are no
  buffers and eval mode also normalizes with the batch statistics.
  Gradients are zeroed before each step (including the eval one).

  Per-variant tensor lists:
    bn2d_default, bn1d_nc, bn1d_ncl, bn2d_momentum_none, bn2d_eps_momentum, bn2d_large_mean:
      weight bias, x_k y_k dy_k dx_k dweight_k dbias_k running_mean_k running_var_k
      num_batches_tracked_k (k=0,1,2), x_eval y_eval dy_eval dx_eval dweight_eval dbias_eval
    bn2d_noaffine:
      x_k y_k dy_k dx_k running_mean_k running_var_k num_batches_tracked_k (k=0,1,2),
      x_eval y_eval dy_eval dx_eval
    bn2d_notrack:
      weight bias, x_k y_k dy_k dx_k dweight_k dbias_k (k=0,1,2),
      x_eval y_eval dy_eval dx_eval dweight_eval dbias_eval

=============================================================================================
Layer fixtures
=============================================================================================
  conv2d.safetensors        Conv2d(3, 4, kernel_size=3, stride=2, padding=1), x (2,3,7,7)
      x (2,3,7,7), weight (4,3,3,3), bias (4,), y (2,4,4,4), dy (2,4,4,4),
      dx (2,3,7,7), dweight (4,3,3,3), dbias (4,)
      metadata: seed, in_channels, out_channels, kernel_size, stride, padding
  conv2d_nopad.safetensors  Conv2d(2, 3, 3, stride=1, padding=0), x (2,2,6,5)
      x (2,2,6,5), weight (3,2,3,3), bias (3,), y (2,3,4,3), dy (2,3,4,3),
      dx (2,2,6,5), dweight (3,2,3,3), dbias (3,)
      metadata: seed, in_channels, out_channels, kernel_size, stride, padding
  linear.safetensors        Linear(7, 5), x (4,7)      (y = x @ weight^T + bias)
      x (4,7), weight (5,7), bias (5,), y (4,5), dy (4,5), dx (4,7), dweight (5,7), dbias (5,)
      metadata: seed, in_features, out_features
  maxpool2d.safetensors     F.max_pool2d(x, 2) (kernel 2, stride 2), x (2,3,6,6) randn (no ties)
      x (2,3,6,6), y (2,3,3,3), dy (2,3,3,3), dx (2,3,6,6)
      metadata: seed, kernel_size, stride
  relu.safetensors          F.relu, x (3,10) randn with exact zeros at [0,0], [1,5], [2,9]
                            and a negative zero (-0.0) at [1,2]
      x (3,10), y (3,10), dy (3,10), dx (3,10)
      metadata: seed, zeros
  log_softmax_nll.safetensors
      x (6,10) logits = randn with row 2 multiplied by 100
      labels (6,) F32 integer values in 0..9
      logp (6,10) = F.log_softmax(x, dim=1)
      loss (1,) = F.nll_loss(logp, labels, reduction="mean")
      dx (6,10) = d loss / d x      (backward of loss itself, no dy)
      metadata: seed, reduction, scaled_row

=============================================================================================
seed_net.safetensors: the tutorial's network (tools/golden/seed_net.py), one training step
=============================================================================================
Parameters, with their id t (state_dict order, parameters only) and shapes:
   t  name             shape         initial value (s = sin(0.37*i + 1.3*t + 0.1))
   0  conv1.weight     (32,1,3,3)    0.05*s
   1  conv1.bias       (32,)         0.05*s
   2  conv1_bn.weight  (32,)         1 + 0.1*s
   3  conv1_bn.bias    (32,)         0.1*s
   4  conv2.weight     (64,32,3,3)   0.05*s
   5  conv2.bias       (64,)         0.05*s
   6  conv2_bn.weight  (64,)         1 + 0.1*s
   7  conv2_bn.bias    (64,)         0.1*s
   8  fc1.weight       (128,9216)    0.01*s
   9  fc1.bias         (128,)        0.05*s
  10  fc1_bn.weight    (128,)        1 + 0.1*s
  11  fc1_bn.bias      (128,)        0.1*s
  12  fc2.weight       (10,128)      0.05*s
  13  fc2.bias         (10,)         0.05*s

Init formula (exact): i is the 0-based flat row-major index of the element inside its
tensor. Everything is computed in IEEE double, in this order,
    a = (0.37 * (double)i + 1.3 * (double)t) + 0.1      (no fused multiply-add)
    s = sin(a)                                          (libm sin; Python math.sin)
    v = A * s        for conv/linear weights and biases (A = 0.05, but A = 0.01 for fc1.weight)
    v = 1.0 + 0.1*s  for BN weights
    v = 0.1 * s      for BN biases
and then rounded once to float32 (round to nearest even). The BN buffers start at
PyTorch's defaults (running_mean 0, running_var 1, num_batches_tracked 0).

Input: torch.manual_seed(init_seed); x = randn(8,1,28,28); labels = randint(0,10,(8,))
(labels stored as F32). The weights do not depend on init_seed (formula above).
The forward is in train mode with dropout1.p = 0.0 (dropout off, BN in batch-stats mode);
loss = F.nll_loss(logp, labels) (mean over the 8 samples).

fc1.weight is 128x9216 (4.7 MB), so wherever a copy of it would be stored (prefixes
init., grad., adadelta., sgd.) it is replaced by two tensors:
    <prefix>.fc1.weight.rowsum  (128,)     sum over dim 1 (the 9216 inputs), accumulated in
                                           float64 from the float32 values, rounded to float32
    <prefix>.fc1.weight.slice   (2,9216)   rows 0 and 1, exact
All other parameters are stored whole.

Tensors (P = the 14 parameter names above; P' = P without fc1.weight):
    x (8,1,28,28), labels (8,)
    init.<p> for p in P'; init.fc1.weight.rowsum, init.fc1.weight.slice
    logp (8,10)      train-mode output
    loss (1,)        mean NLL
    grad.<p> for p in P'; grad.fc1.weight.rowsum, grad.fc1.weight.slice
    after.<bn>.running_mean, after.<bn>.running_var (C,), after.<bn>.num_batches_tracked
        ([] I64, = 1) for bn in conv1_bn (C=32), conv2_bn (C=64), fc1_bn (C=128):
        the BN buffers after the single train-mode forward
    adadelta.<p> for p in P'; adadelta.fc1.weight.rowsum, adadelta.fc1.weight.slice
        parameters after one torch.optim.Adadelta(lr=1.0, rho=0.9, eps=1e-6,
        weight_decay=0) step from the initial weights with the gradients above
    sgd.<p> for p in P'; sgd.fc1.weight.rowsum, sgd.fc1.weight.slice
        parameters after one torch.optim.SGD(lr=0.1, momentum=0.9, dampening=0,
        weight_decay=1e-4, nesterov=False) step from the initial weights with the same
        gradients (fresh optimizer state, so momentum buffer = grad + 1e-4*param)
    eval_logp (8,10)  net.eval() log-probs of the same x, with the initial weights and the
                      running stats updated by the single train-mode forward (after.*)
Metadata: init_seed, init_formula, param_order, dropout_p, loss, fc1_weight_storage,
adadelta_lr, adadelta_rho, adadelta_eps, adadelta_weight_decay, sgd_lr, sgd_momentum,
sgd_dampening, sgd_weight_decay, sgd_nesterov.
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors_io  # noqa: E402
from seed_net import Net  # noqa: E402

OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures"))


def _b(v: bool) -> str:
    return "true" if v else "false"


def _write(name, tensors, metadata):
    for k, t in tensors.items():
        assert t.dtype in (torch.float32, torch.int64), (name, k, t.dtype)
    path = os.path.join(OUT_DIR, name)
    safetensors_io.save(path, tensors, metadata)
    print(f"{name:32s} {len(tensors):3d} tensors {os.path.getsize(path):8d} bytes")


def _d(t):
    return t.detach().clone()


# ----------------------------------------------------------------------------------------
# BatchNorm
# ----------------------------------------------------------------------------------------

BN_VARIANTS = [
    # name, seed, kind, C, input shape, kwargs, large_mean
    ("bn2d_default", 101, "2d", 3, (4, 3, 5, 6), {}, False),
    ("bn1d_nc", 102, "1d", 5, (8, 5), {}, False),
    ("bn1d_ncl", 103, "1d", 3, (4, 3, 7), {}, False),
    ("bn2d_noaffine", 104, "2d", 3, (4, 3, 5, 6), {"affine": False}, False),
    ("bn2d_notrack", 105, "2d", 3, (4, 3, 5, 6), {"track_running_stats": False}, False),
    ("bn2d_momentum_none", 106, "2d", 3, (4, 3, 5, 6), {"momentum": None}, False),
    ("bn2d_eps_momentum", 107, "2d", 3, (4, 3, 5, 6), {"eps": 1e-3, "momentum": 0.3}, False),
    ("bn2d_large_mean", 108, "2d", 3, (4, 3, 5, 6), {}, True),
]


def make_bn(name, seed, kind, c, shape, kwargs, large_mean):
    torch.manual_seed(seed)
    cls = nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d
    m = cls(c, **kwargs)
    out = {}
    if m.affine:
        with torch.no_grad():
            m.weight.copy_(1 + 0.1 * torch.randn(c))
            m.bias.copy_(0.1 * torch.randn(c))
        out["weight"] = _d(m.weight)
        out["bias"] = _d(m.bias)

    def draw_x():
        if large_mean:
            return 1e4 + 1e-2 * torch.randn(shape)
        return torch.randn(shape)

    def step(suffix):
        x = draw_x().requires_grad_(True)
        m.zero_grad(set_to_none=True)
        y = m(x)
        dy = torch.randn(y.shape)
        (y * dy).sum().backward()
        out[f"x_{suffix}"] = _d(x)
        out[f"y_{suffix}"] = _d(y)
        out[f"dy_{suffix}"] = _d(dy)
        out[f"dx_{suffix}"] = _d(x.grad)
        if m.affine:
            out[f"dweight_{suffix}"] = _d(m.weight.grad)
            out[f"dbias_{suffix}"] = _d(m.bias.grad)

    m.train()
    for k in range(3):
        step(str(k))
        if m.track_running_stats:
            out[f"running_mean_{k}"] = _d(m.running_mean)
            out[f"running_var_{k}"] = _d(m.running_var)
            out[f"num_batches_tracked_{k}"] = _d(m.num_batches_tracked).reshape(())
    m.eval()
    step("eval")

    meta = {
        "seed": str(seed),
        "kind": kind,
        "eps": repr(float(m.eps)),
        "momentum": "none" if m.momentum is None else repr(float(m.momentum)),
        "affine": _b(m.affine),
        "track_running_stats": _b(m.track_running_stats),
        "steps": "3",
    }
    if large_mean:
        meta["input"] = "1e4 + 1e-2*randn"
    _write(f"bn_{name}.safetensors", out, meta)


# ----------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------


def _layer_fixture(fname, seed, module, xshape, meta):
    torch.manual_seed(seed)
    m = module()  # default PyTorch init, drawn after seeding
    x = torch.randn(xshape).requires_grad_(True)
    y = m(x)
    dy = torch.randn(y.shape)
    (y * dy).sum().backward()
    out = {
        "x": _d(x), "weight": _d(m.weight), "bias": _d(m.bias), "y": _d(y), "dy": _d(dy),
        "dx": _d(x.grad), "dweight": _d(m.weight.grad), "dbias": _d(m.bias.grad),
    }
    _write(fname, out, dict(meta, seed=str(seed)))


def make_layers():
    _layer_fixture(
        "conv2d.safetensors", 201, lambda: nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1), (2, 3, 7, 7),
        {"in_channels": "3", "out_channels": "4", "kernel_size": "3", "stride": "2", "padding": "1"},
    )
    _layer_fixture(
        "conv2d_nopad.safetensors", 202, lambda: nn.Conv2d(2, 3, 3, stride=1, padding=0), (2, 2, 6, 5),
        {"in_channels": "2", "out_channels": "3", "kernel_size": "3", "stride": "1", "padding": "0"},
    )
    _layer_fixture(
        "linear.safetensors", 203, lambda: nn.Linear(7, 5), (4, 7),
        {"in_features": "7", "out_features": "5"},
    )

    # max_pool2d
    torch.manual_seed(204)
    x = torch.randn(2, 3, 6, 6).requires_grad_(True)
    y = F.max_pool2d(x, 2)
    dy = torch.randn(y.shape)
    (y * dy).sum().backward()
    _write("maxpool2d.safetensors", {"x": _d(x), "y": _d(y), "dy": _d(dy), "dx": _d(x.grad)},
           {"seed": "204", "kernel_size": "2", "stride": "2"})

    # relu
    torch.manual_seed(205)
    x = torch.randn(3, 10)
    x[0, 0] = 0.0
    x[1, 5] = 0.0
    x[2, 9] = 0.0
    x[1, 2] = -0.0
    x.requires_grad_(True)
    y = F.relu(x)
    dy = torch.randn(y.shape)
    (y * dy).sum().backward()
    _write("relu.safetensors", {"x": _d(x), "y": _d(y), "dy": _d(dy), "dx": _d(x.grad)},
           {"seed": "205", "zeros": "+0.0 at [0,0] [1,5] [2,9]; -0.0 at [1,2]"})

    # log_softmax + nll_loss
    torch.manual_seed(206)
    x = torch.randn(6, 10)
    x[2] *= 100.0
    labels = torch.randint(0, 10, (6,))
    x.requires_grad_(True)
    logp = F.log_softmax(x, dim=1)
    loss = F.nll_loss(logp, labels, reduction="mean")
    loss.backward()
    _write("log_softmax_nll.safetensors",
           {"x": _d(x), "labels": labels.to(torch.float32), "logp": _d(logp),
            "loss": _d(loss).reshape(1), "dx": _d(x.grad)},
           {"seed": "206", "reduction": "mean", "scaled_row": "2 (multiplied by 100)"})


# ----------------------------------------------------------------------------------------
# seed_net
# ----------------------------------------------------------------------------------------

INIT_FORMULA = (
    "t = index of the parameter in state_dict order counting parameters only (0..13); "
    "i = 0-based row-major flat index inside the tensor; in float64: "
    "a = (0.37*i + 1.3*t) + 0.1; s = sin(a); "
    "v = 0.05*s for conv/linear weights and biases except fc1.weight where v = 0.01*s; "
    "v = 1.0 + 0.1*s for BN weights; v = 0.1*s for BN biases; "
    "then round v once to float32 (nearest even)"
)


def init_value_tensor(name, t, shape):
    n = math.prod(shape)
    sin = math.sin
    s = [sin(0.37 * i + 1.3 * t + 0.1) for i in range(n)]
    if "_bn." in name and name.endswith(".weight"):
        v = [1.0 + 0.1 * e for e in s]
    elif "_bn." in name and name.endswith(".bias"):
        v = [0.1 * e for e in s]
    elif name == "fc1.weight":
        v = [0.01 * e for e in s]
    else:
        v = [0.05 * e for e in s]
    return torch.tensor(v, dtype=torch.float64).to(torch.float32).reshape(shape)


def _store_params(out, prefix, named):
    """named: iterable of (name, tensor). fc1.weight -> rowsum + slice."""
    for n, p in named:
        p = p.detach()
        if n == "fc1.weight":
            out[f"{prefix}.fc1.weight.rowsum"] = p.to(torch.float64).sum(dim=1).to(torch.float32)
            out[f"{prefix}.fc1.weight.slice"] = p[0:2].clone()
        else:
            out[f"{prefix}.{n}"] = p.clone()


def make_seed_net():
    torch.manual_seed(0)
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n in net.state_dict() if n in dict(net.named_parameters())]
    with torch.no_grad():
        for t, (n, p) in enumerate(net.named_parameters()):
            p.copy_(init_value_tensor(n, t, tuple(p.shape)))
    net.dropout1.p = 0.0

    init_seed = 301
    torch.manual_seed(init_seed)
    x = torch.randn(8, 1, 28, 28)
    labels = torch.randint(0, 10, (8,))

    out = {"x": x.clone(), "labels": labels.to(torch.float32)}
    _store_params(out, "init", net.named_parameters())

    net.train()
    net.zero_grad(set_to_none=True)
    logp = net(x)
    loss = F.nll_loss(logp, labels)
    loss.backward()
    out["logp"] = _d(logp)
    out["loss"] = _d(loss).reshape(1)
    _store_params(out, "grad", ((n, p.grad) for n, p in net.named_parameters()))
    for bn in ("conv1_bn", "conv2_bn", "fc1_bn"):
        mod = getattr(net, bn)
        out[f"after.{bn}.running_mean"] = _d(mod.running_mean)
        out[f"after.{bn}.running_var"] = _d(mod.running_var)
        out[f"after.{bn}.num_batches_tracked"] = _d(mod.num_batches_tracked).reshape(())

    def opt_step(prefix, cls, **kw):
        ps = []
        for p in net.parameters():
            q = p.detach().clone().requires_grad_(True)
            q.grad = p.grad.detach().clone()
            ps.append(q)
        opt = cls(ps, **kw)
        opt.step()
        _store_params(out, prefix, zip(names, ps))

    adadelta = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}
    sgd = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-4, "nesterov": False}
    opt_step("adadelta", torch.optim.Adadelta, foreach=False, **adadelta)
    opt_step("sgd", torch.optim.SGD, foreach=False, **sgd)

    net.eval()
    with torch.no_grad():
        out["eval_logp"] = net(x).clone()

    meta = {
        "init_seed": str(init_seed),
        "init_formula": INIT_FORMULA,
        "param_order": ",".join(names),
        "dropout_p": "0.0",
        "loss": "nll_loss mean",
        "fc1_weight_storage": "<prefix>.fc1.weight.rowsum = sum over dim 1 accumulated in float64, "
                              "rounded to float32, shape (128,); <prefix>.fc1.weight.slice = rows 0..1, "
                              "shape (2,9216); prefixes init, grad, adadelta, sgd",
    }
    for k, v in adadelta.items():
        meta[f"adadelta_{k}"] = repr(v)
    for k, v in sgd.items():
        meta[f"sgd_{k}"] = _b(v) if isinstance(v, bool) else repr(v)
    _write("seed_net.safetensors", out, meta)


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(OUT_DIR, exist_ok=True)
    for v in BN_VARIANTS:
        make_bn(*v)
    make_layers()
    make_seed_net()


if __name__ == "__main__":
    main()
