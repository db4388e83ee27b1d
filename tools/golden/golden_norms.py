"""GroupNorm, LayerNorm and InstanceNorm1d/2d fixtures (make_fixtures.py).

Per-sample norm fixtures: norm_<variant>.safetensors
====================================================
  variant              module                                               input shape
  gn_default           GroupNorm(2, 6)                                      (4,6,5,5)
  gn_groups_of_one     GroupNorm(6, 6)             (groups of one channel)  (3,6,4,4)
  gn_one_group         GroupNorm(1, 6, affine=False)                        (3,6,4,4)
  gn_spatial1          GroupNorm(8, 16)   (spatial size 1), float64         (5,16)
  gn_eps               GroupNorm(3, 6, eps=1e-3)                            (2,6,3,7)
  gn_large_mean        GroupNorm(2, 6); input 1e4 + 1e-2*randn, float64     (4,6,5,5)
  ln_chw               LayerNorm((4, 5, 5))                                 (3,4,5,5)
  ln_features          LayerNorm(16)                                        (5,16)
  ln_noaffine          LayerNorm((3, 4, 4), eps=1e-3, elementwise_affine=False)  (2,3,4,4)
  ln_large_mean        LayerNorm((3, 4, 4)); input 1e4 + 1e-2*randn, float64  (2,3,4,4)
  in2d_default         InstanceNorm2d(3)                                    (4,3,5,5)
  in2d_affine_track    InstanceNorm2d(3, affine=True, track_running_stats=True)  (4,3,5,5)
  in1d_track           InstanceNorm1d(4, momentum=0.3, track_running_stats=True) (3,4,7)
  in1d_affine          InstanceNorm1d(4, affine=True)                       (3,4,7)
  in2d_large_mean      InstanceNorm2d(3, affine=True); 1e4 + 1e-2*randn, float64 (4,3,5,5)

The *_large_mean cases and gn_spatial1 run the module in float64 on the float32 input (results
stored rounded to float32): PyTorch's float32 CPU kernels take float moments and
y = x * (rstd * w) + (b - mean * rstd * w), which at mean 1e4, std 1e-2 is off the exact value
by far more than the fixtures' tolerance, and gn_spatial1's groups of two values make the float32
input gradient ill-conditioned (1.7e-4 off the float64 one, where bnlab is within 1e-8). bnlab
keeps the statistics in double, so the float64 run is the answer it is held to. The other cases
run in float32.

Metadata: seed, spec (the bnlab spec line of the same layer, named "n"), dtype ("float32" or
"float64", what the module ran in), affine, track_running_stats ("true"|"false"), steps ("2").

Tensors (P = the affine's shape: (C,) for GroupNorm/InstanceNorm, the normalized shape for
LayerNorm; C = channels):
  weight, bias                       P   initial affine (1 + 0.1*randn, 0.1*randn)  [affine only]
  for k in 0, 1 (module.train(); parameters never updated between steps):
    x_k, y_k, dy_k, dx_k             input shape
    dweight_k, dbias_k               P                                          [affine only]
    running_mean_k, running_var_k    (C,) after step k                          [tracking only]
    num_batches_tracked_k            []  I64 (PyTorch's InstanceNorm leaves it 0) [tracking only]
  then module.eval(): x_eval, y_eval, dy_eval, dx_eval, dweight_eval, dbias_eval as above.
  Gradients are zeroed before each step; loss = (y * dy).sum().
"""

import torch
import torch.nn as nn

from golden_common import bool_str, detached, write_fixture

NORM_VARIANTS = [
    # name, seed, module factory, bnlab spec line, input shape, large_mean, float64
    ("gn_default", 201, lambda: nn.GroupNorm(2, 6), "n: GroupNorm num_groups=2", (4, 6, 5, 5), False, False),
    ("gn_groups_of_one", 202, lambda: nn.GroupNorm(6, 6), "n: GroupNorm num_groups=6", (3, 6, 4, 4), False, False),
    ("gn_one_group", 203, lambda: nn.GroupNorm(1, 6, affine=False), "n: GroupNorm num_groups=1 affine=false",
     (3, 6, 4, 4), False, False),
    ("gn_spatial1", 204, lambda: nn.GroupNorm(8, 16), "n: GroupNorm num_groups=8", (5, 16), False, True),
    ("gn_eps", 205, lambda: nn.GroupNorm(3, 6, eps=1e-3), "n: GroupNorm num_groups=3 eps=1e-3", (2, 6, 3, 7), False, False),
    ("gn_large_mean", 206, lambda: nn.GroupNorm(2, 6), "n: GroupNorm num_groups=2", (4, 6, 5, 5), True, True),
    ("ln_chw", 211, lambda: nn.LayerNorm((4, 5, 5)), "n: LayerNorm", (3, 4, 5, 5), False, False),
    ("ln_features", 212, lambda: nn.LayerNorm(16), "n: LayerNorm", (5, 16), False, False),
    ("ln_noaffine", 213, lambda: nn.LayerNorm((3, 4, 4), eps=1e-3, elementwise_affine=False),
     "n: LayerNorm eps=1e-3 elementwise_affine=false", (2, 3, 4, 4), False, False),
    ("ln_large_mean", 214, lambda: nn.LayerNorm((3, 4, 4)), "n: LayerNorm", (2, 3, 4, 4), True, True),
    ("in2d_default", 221, lambda: nn.InstanceNorm2d(3), "n: InstanceNorm2d", (4, 3, 5, 5), False, False),
    ("in2d_affine_track", 222, lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
     "n: InstanceNorm2d affine=true track_running_stats=true", (4, 3, 5, 5), False, False),
    ("in1d_track", 223, lambda: nn.InstanceNorm1d(4, momentum=0.3, track_running_stats=True),
     "n: InstanceNorm1d momentum=0.3 track_running_stats=true", (3, 4, 7), False, False),
    ("in1d_affine", 224, lambda: nn.InstanceNorm1d(4, affine=True), "n: InstanceNorm1d affine=true", (3, 4, 7), False, False),
    ("in2d_large_mean", 225, lambda: nn.InstanceNorm2d(3, affine=True), "n: InstanceNorm2d affine=true",
     (4, 3, 5, 5), True, True),
]


def f32(t):
    return detached(t).to(torch.float32)


def make_norm(name, seed, factory, spec, shape, large_mean, float64):
    torch.manual_seed(seed)
    m = factory()
    affine = getattr(m, "affine", getattr(m, "elementwise_affine", False))
    track = getattr(m, "track_running_stats", False)
    out = {}
    if affine:
        with torch.no_grad():
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape))
        out["weight"] = f32(m.weight)
        out["bias"] = f32(m.bias)
    dtype = torch.float64 if float64 else torch.float32
    m = m.to(dtype)

    def step(suffix):
        x = (1e4 + 1e-2 * torch.randn(shape)) if large_mean else torch.randn(shape)
        x = x.to(dtype).requires_grad_(True)
        m.zero_grad(set_to_none=True)
        y = m(x)
        dy = torch.randn(y.shape).to(dtype)
        (y * dy).sum().backward()
        for key, t in (("x", x), ("y", y), ("dy", dy), ("dx", x.grad)):
            out[f"{key}_{suffix}"] = f32(t)
        if affine:
            out[f"dweight_{suffix}"] = f32(m.weight.grad)
            out[f"dbias_{suffix}"] = f32(m.bias.grad)

    m.train()
    for k in range(2):
        step(str(k))
        if track:
            out[f"running_mean_{k}"] = f32(m.running_mean)
            out[f"running_var_{k}"] = f32(m.running_var)
            out[f"num_batches_tracked_{k}"] = detached(m.num_batches_tracked).reshape(())
    m.eval()
    step("eval")
    meta = {
        "seed": str(seed),
        "spec": spec,
        "dtype": "float64" if float64 else "float32",
        "affine": bool_str(affine),
        "track_running_stats": bool_str(track),
        "steps": "2",
    }
    if large_mean:
        meta["input"] = "1e4 + 1e-2*randn"
    write_fixture(f"norm_{name}.safetensors", out, meta)


def make_norms():
    for v in NORM_VARIANTS:
        make_norm(*v)
