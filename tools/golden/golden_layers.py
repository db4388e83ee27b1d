"""Single-layer fixtures (make_fixtures.py).

Layer fixtures
==============
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
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import detached, write_fixture


def _layer_fixture(fname, seed, module, xshape, meta):
    torch.manual_seed(seed)
    m = module()  # default PyTorch init, drawn after seeding
    x = torch.randn(xshape).requires_grad_(True)
    y = m(x)
    dy = torch.randn(y.shape)
    (y * dy).sum().backward()
    out = {
        "x": detached(x), "weight": detached(m.weight), "bias": detached(m.bias), "y": detached(y), "dy": detached(dy),
        "dx": detached(x.grad), "dweight": detached(m.weight.grad), "dbias": detached(m.bias.grad),
    }
    write_fixture(fname, out, dict(meta, seed=str(seed)))


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
    write_fixture("maxpool2d.safetensors", {"x": detached(x), "y": detached(y), "dy": detached(dy), "dx": detached(x.grad)},
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
    write_fixture("relu.safetensors", {"x": detached(x), "y": detached(y), "dy": detached(dy), "dx": detached(x.grad)},
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
    write_fixture("log_softmax_nll.safetensors",
           {"x": detached(x), "labels": labels.to(torch.float32), "logp": detached(logp),
            "loss": detached(loss).reshape(1), "dx": detached(x.grad)},
           {"seed": "206", "reduction": "mean", "scaled_row": "2 (multiplied by 100)"})
