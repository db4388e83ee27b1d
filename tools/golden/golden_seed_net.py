"""The seed network fixture (make_fixtures.py): the tutorial's network, one training step.

seed_net.safetensors: the tutorial's network (tools/golden/seed_net.py), one training step
==========================================================================================
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

import torch
import torch.nn.functional as F

from golden_common import detached, store_params, write_fixture
from golden_optimizers import optimizer_steps
from seed_net import Net


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
    store_params(out, "init", net.named_parameters())

    net.train()
    net.zero_grad(set_to_none=True)
    logp = net(x)
    loss = F.nll_loss(logp, labels)
    loss.backward()
    out["logp"] = detached(logp)
    out["loss"] = detached(loss).reshape(1)
    store_params(out, "grad", ((n, p.grad) for n, p in net.named_parameters()))
    for bn in ("conv1_bn", "conv2_bn", "fc1_bn"):
        mod = getattr(net, bn)
        out[f"after.{bn}.running_mean"] = detached(mod.running_mean)
        out[f"after.{bn}.running_var"] = detached(mod.running_var)
        out[f"after.{bn}.num_batches_tracked"] = detached(mod.num_batches_tracked).reshape(())

    optimizer_meta = optimizer_steps(out, net, names)

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
    meta.update(optimizer_meta)
    write_fixture("seed_net.safetensors", out, meta)
