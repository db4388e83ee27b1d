"""BatchNorm1d/2d fixtures (make_fixtures.py).

BatchNorm fixtures: bn_<variant>.safetensors
============================================
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
"""

import torch
import torch.nn as nn

from golden_common import bool_str, detached, write_fixture


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
        out["weight"] = detached(m.weight)
        out["bias"] = detached(m.bias)

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
        out[f"x_{suffix}"] = detached(x)
        out[f"y_{suffix}"] = detached(y)
        out[f"dy_{suffix}"] = detached(dy)
        out[f"dx_{suffix}"] = detached(x.grad)
        if m.affine:
            out[f"dweight_{suffix}"] = detached(m.weight.grad)
            out[f"dbias_{suffix}"] = detached(m.bias.grad)

    m.train()
    for k in range(3):
        step(str(k))
        if m.track_running_stats:
            out[f"running_mean_{k}"] = detached(m.running_mean)
            out[f"running_var_{k}"] = detached(m.running_var)
            out[f"num_batches_tracked_{k}"] = detached(m.num_batches_tracked).reshape(())
    m.eval()
    step("eval")

    meta = {
        "seed": str(seed),
        "kind": kind,
        "eps": repr(float(m.eps)),
        "momentum": "none" if m.momentum is None else repr(float(m.momentum)),
        "affine": bool_str(m.affine),
        "track_running_stats": bool_str(m.track_running_stats),
        "steps": "3",
    }
    if large_mean:
        meta["input"] = "1e4 + 1e-2*randn"
    write_fixture(f"bn_{name}.safetensors", out, meta)
