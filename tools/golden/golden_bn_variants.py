"""Fixtures of BatchNorm's variants (make_fixtures.py): ghost batches, frozen statistics, and
Batch Renormalization.

BatchNorm variant fixtures: bnv_<variant>.safetensors
=====================================================
  variant           reference                                                   input shape
  ghost2d           BatchNorm2d(3) on each chunk of x.split(4), concatenated      (10,3,4,4)
  ghost1d           BatchNorm1d(5) on each chunk of x.split(3)                     (9,5)
  frozen2d          BatchNorm2d(3) in eval mode while training (FrozenBatchNorm)   (6,3,4,4)
  renorm_clipped    Batch Renorm 2d, r_max=1.5 d_max=0.5, warm-up 1, ramp 2        (6,3,4,4)
  renorm_free       Batch Renorm 2d, r_max=100 d_max=100 (r and d never clipped)   (6,3,4,4)
  renorm1d          Batch Renorm 1d, affine=False, r_max=2 d_max=1, momentum=0.3   (8,4)

Ghost and frozen BN are PyTorch's own BatchNorm modules used as those variants define them.
PyTorch has no Batch Renormalization: renorm_* come from batch_renorm_train below, written from
Ioffe 2017 (arXiv 1702.03275), Algorithm 1, in float64 with autograd, r and d detached ("treated
as constants" in backward), stored rounded to float32. Its running statistics keep PyTorch's
layout, as bnlab does: running_var follows the unbiased batch variance with the momentum, and
the paper's sigma is sqrt(running_var + eps). r_max and d_max follow the paper's schedule as
bnlab implements it: 1 and 0 for `warmup` steps, then linear to their values over `ramp` steps
(the limit at step t, counted from 0, is initial + (target - initial) * (t - warmup) / ramp).
The renorm inputs are 2 + 3*randn against running statistics that start at 0 and 1, so that
r and d clip in renorm_clipped.

Metadata: seed, spec (the bnlab spec line, layer named "bn"), steps (number of training steps),
affine, and for frozen2d the initial buffers are tensors (below).

Tensors (C = channels):
  weight, bias                          (C,)  initial affine (1 + 0.1*randn, 0.1*randn) [affine]
  running_mean_init, running_var_init   (C,)  buffers before step 0
  num_batches_tracked_init              []    I64
  for k in 0 .. steps-1 (training; parameters never updated between steps):
    x_k, y_k, dy_k, dx_k                input shape
    dweight_k, dbias_k                  (C,)                                  [affine only]
    running_mean_k, running_var_k       (C,)  after step k
    num_batches_tracked_k               []    I64
  then evaluation: x_eval, y_eval, dy_eval, dx_eval (and dweight_eval, dbias_eval).
  Gradients are zeroed before each step; loss = (y * dy).sum().
"""

import torch
import torch.nn as nn

from golden_common import bool_str, detached, write_fixture


def channel_view(t, x):
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def renorm_limit(initial, target, step, warmup, ramp):
    if step < warmup:
        return initial
    if step >= warmup + ramp:
        return target
    return initial + (target - initial) * (step - warmup) / ramp


def batch_renorm_train(x, weight, bias, state, eps, momentum, r_max, d_max):
    """Algorithm 1 of the paper for one training batch; updates state (running_mean, running_var,
    num_batches_tracked) in place and returns y."""
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dims)
    var = x.var(dims, unbiased=False)
    sigma_batch = torch.sqrt(var + eps)
    sigma = torch.sqrt(state["running_var"] + eps)
    r = (sigma_batch / sigma).clamp(1.0 / r_max, r_max).detach()
    d = ((mean - state["running_mean"]) / sigma).clamp(-d_max, d_max).detach()
    x_hat = (x - channel_view(mean, x)) / channel_view(sigma_batch, x) * channel_view(r, x) + channel_view(d, x)
    y = x_hat
    if weight is not None:
        y = x_hat * channel_view(weight, x) + channel_view(bias, x)
    count = x.numel() // x.shape[1]
    unbiased = var.detach() * count / (count - 1)
    state["running_mean"] = (1 - momentum) * state["running_mean"] + momentum * mean.detach()
    state["running_var"] = (1 - momentum) * state["running_var"] + momentum * unbiased
    state["num_batches_tracked"] += 1
    return y


def batch_renorm_eval(x, weight, bias, state, eps):
    y = (x - channel_view(state["running_mean"], x)) / torch.sqrt(channel_view(state["running_var"], x) + eps)
    if weight is not None:
        y = y * channel_view(weight, x) + channel_view(bias, x)
    return y


def f32(t):
    return detached(t).to(torch.float32)


def initial_affine(out, C, affine):
    if not affine:
        return None, None
    weight = 1 + 0.1 * torch.randn(C)
    bias = 0.1 * torch.randn(C)
    out["weight"], out["bias"] = weight.clone(), bias.clone()
    return weight, bias


def record_step(out, suffix, x, y, dy, params):
    for key, t in (("x", x), ("y", y), ("dy", dy), ("dx", x.grad)):
        out[f"{key}_{suffix}"] = f32(t)
    if params is not None:
        out[f"dweight_{suffix}"] = f32(params[0].grad)
        out[f"dbias_{suffix}"] = f32(params[1].grad)


def record_buffers(out, suffix, mean, var, tracked):
    out[f"running_mean_{suffix}"] = f32(mean)
    out[f"running_var_{suffix}"] = f32(var)
    out[f"num_batches_tracked_{suffix}"] = torch.tensor(int(tracked), dtype=torch.int64).reshape(())


def make_module_variant(name, seed, module, spec, shape, steps, forward_train, init_buffers=None):
    """ghost and frozen: PyTorch's module, run in training by forward_train(module, x)."""
    torch.manual_seed(seed)
    C = shape[1]
    out = {}
    weight, bias = initial_affine(out, C, True)
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
        if init_buffers:
            module.running_mean.copy_(init_buffers[0])
            module.running_var.copy_(init_buffers[1])
            module.num_batches_tracked.fill_(init_buffers[2])
    record_buffers(out, "init", module.running_mean, module.running_var, module.num_batches_tracked)

    def step(suffix, run):
        x = torch.randn(shape).requires_grad_(True)
        module.zero_grad(set_to_none=True)
        y = run(x)
        dy = torch.randn(y.shape)
        (y * dy).sum().backward()
        record_step(out, suffix, x, y, dy, (module.weight, module.bias))

    for k in range(steps):
        step(str(k), lambda x: forward_train(module, x))
        record_buffers(out, str(k), module.running_mean, module.running_var, module.num_batches_tracked)
    module.eval()
    step("eval", module)
    write_fixture(f"bnv_{name}.safetensors", out,
                  {"seed": str(seed), "spec": spec, "steps": str(steps), "affine": "true"})


def ghost(virtual_batch):
    def run(module, x):
        module.train()
        return torch.cat([module(chunk) for chunk in x.split(virtual_batch)])
    return run


def frozen(module, x):
    module.eval()
    return module(x)


def make_renorm(name, seed, spec, shape, steps, affine, eps, momentum, r_max, d_max, warmup, ramp):
    torch.manual_seed(seed)
    C = shape[1]
    out = {}
    weight, bias = initial_affine(out, C, affine)
    params = None
    if affine:
        params = (weight.double().requires_grad_(True), bias.double().requires_grad_(True))
    state = {"running_mean": torch.zeros(C, dtype=torch.float64), "running_var": torch.ones(C, dtype=torch.float64),
             "num_batches_tracked": 0}
    record_buffers(out, "init", state["running_mean"], state["running_var"], 0)

    def step(suffix, run):
        x32 = 2 + 3 * torch.randn(shape)
        x = x32.double().requires_grad_(True)
        if params is not None:
            for p in params:
                p.grad = None
        y = run(x)
        dy = torch.randn(y.shape).double()
        (y * dy).sum().backward()
        record_step(out, suffix, x, y, dy, params)

    w, b = params if params is not None else (None, None)
    for k in range(steps):
        t = state["num_batches_tracked"]
        rm, dm = renorm_limit(1.0, r_max, t, warmup, ramp), renorm_limit(0.0, d_max, t, warmup, ramp)
        step(str(k), lambda x: batch_renorm_train(x, w, b, state, eps, momentum, rm, dm))
        record_buffers(out, str(k), state["running_mean"], state["running_var"], state["num_batches_tracked"])
    step("eval", lambda x: batch_renorm_eval(x, w, b, state, eps))
    write_fixture(f"bnv_{name}.safetensors", out,
                  {"seed": str(seed), "spec": spec, "steps": str(steps), "affine": bool_str(affine)})


def make_bn_variants():
    make_module_variant("ghost2d", 301, nn.BatchNorm2d(3), "bn: BatchNorm2d virtual_batch=4", (10, 3, 4, 4), 2,
                        ghost(4))
    make_module_variant("ghost1d", 302, nn.BatchNorm1d(5), "bn: BatchNorm1d virtual_batch=3", (9, 5), 2, ghost(3))
    torch.manual_seed(303)
    buffers = (0.5 * torch.randn(3), 0.5 + torch.rand(3), 7)
    make_module_variant("frozen2d", 304, nn.BatchNorm2d(3), "bn: BatchNorm2d frozen=stats", (6, 3, 4, 4), 2,
                        frozen, buffers)
    make_renorm("renorm_clipped", 311, "bn: BatchNorm2d renorm=true r_max=1.5 d_max=0.5 renorm_warmup=1 renorm_ramp=2",
                (6, 3, 4, 4), 4, True, 1e-5, 0.1, 1.5, 0.5, 1, 2)
    make_renorm("renorm_free", 312, "bn: BatchNorm2d renorm=true r_max=100 d_max=100", (6, 3, 4, 4), 3, True, 1e-5,
                0.1, 100.0, 100.0, 0, 0)
    make_renorm("renorm1d", 313, "bn: BatchNorm1d renorm=true r_max=2 d_max=1 momentum=0.3 affine=false", (8, 4), 3,
                False, 1e-5, 0.3, 2.0, 1.0, 0, 0)
