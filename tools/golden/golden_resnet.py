"""The residual-network fixture (make_fixtures.py): every piece of bnlab's CIFAR-style ResNets.

resnet_blocks.safetensors: one training step and one evaluation of a small network
===================================================================================
The network is the spec in the metadata ("spec"), built here from PyTorch modules under the same
names: a stem, an identity block, a block whose shortcut is a strided 1x1 Conv2d with BatchNorm2d
(torchvision's downsample, "b.shortcut.0", "b.shortcut.1"), a block with He et al. 2016's
zero-padding shortcut (option A: x[:, :, ::2, ::2] and zero channels after x's) and Fixup's scalar
biases and multiplier (the Scale and Bias layers, each one learnable number of shape [1]), then
AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Linear and LogSoftmax. Input (4, 3, 16, 16).

Parameters: torch.manual_seed(SEED), then module by module in registration order convolution
and linear weights randn * sqrt(2 / fan_in), BN weights 1 + 0.1 randn, BN and Linear biases
0.1 randn, the Scale 0.7 and each Bias 0.1 randn (0 would hide the layer's forward).

Tensors:
    init.<p>          every parameter before the step
    x, dy             input and upstream gradient (randn); loss = (y * dy).sum()
    y_train, dx       the training-mode output (batch statistics) and its input gradient
    grad.<p>          every parameter's gradient
    after.<bn>.running_mean, .running_var   after the training forward
    y_eval            the evaluation-mode output with those running statistics
Metadata: seed, spec.
"""

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import detached, write_fixture

SEED = 2016

SPEC = """stem: Conv2d out_channels=4 kernel_size=3 padding=1 bias=false
stem_bn: BatchNorm2d
stem_relu: ReLU
a: Residual
  conv1: Conv2d out_channels=4 kernel_size=3 padding=1 bias=false
  bn1: BatchNorm2d
  relu1: ReLU
  conv2: Conv2d out_channels=4 kernel_size=3 padding=1 bias=false
  bn2: BatchNorm2d
end
a_relu: ReLU
b: Residual
  conv1: Conv2d out_channels=8 kernel_size=3 stride=2 padding=1 bias=false
  bn1: BatchNorm2d
  relu1: ReLU
  conv2: Conv2d out_channels=8 kernel_size=3 padding=1 bias=false
  bn2: BatchNorm2d
shortcut
  Conv2d out_channels=8 kernel_size=1 stride=2 bias=false
  BatchNorm2d
end
b_relu: ReLU
c: Residual shortcut=pad
  bias1a: Bias
  conv1: Conv2d out_channels=12 kernel_size=3 stride=2 padding=1 bias=false
  bias1b: Bias
  relu1: ReLU
  bias2a: Bias
  conv2: Conv2d out_channels=12 kernel_size=3 padding=1 bias=false
  scale: Scale
  bias2b: Bias
end
c_relu: ReLU
pool: AvgPool2d kernel_size=2
gap: AdaptiveAvgPool2d output_size=1
flat: Flatten
fc: Linear out_features=5
out: LogSoftmax
"""


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.weight


class Bias(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + self.bias


class Block(nn.Module):
    """y = f(x) + skip(x): the body's modules as attributes in order; skip None, "pad" or modules."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body_names = [n for n, _ in body]
        for n, m in body:
            self.add_module(n, m)
        self.pad = shortcut == "pad"
        self.shortcut = nn.Sequential(*shortcut) if isinstance(shortcut, list) else None

    def forward(self, x):
        f = x
        for n in self.body_names:
            f = getattr(self, n)(f)
        if self.shortcut is not None:
            return f + self.shortcut(x)
        if self.pad:
            stride = -(-x.shape[2] // f.shape[2])
            s = x[:, :, ::stride, ::stride]
            s = F.pad(s, (0, 0, 0, 0, 0, f.shape[1] - x.shape[1]))
            return f + s
        return f + x


def conv(i, o, stride=1, k=3):
    return nn.Conv2d(i, o, k, stride=stride, padding=k // 2, bias=False)


def make_net():
    return nn.Sequential(OrderedDict([
        ("stem", conv(3, 4)), ("stem_bn", nn.BatchNorm2d(4)), ("stem_relu", nn.ReLU()),
        ("a", Block([("conv1", conv(4, 4)), ("bn1", nn.BatchNorm2d(4)), ("relu1", nn.ReLU()),
                     ("conv2", conv(4, 4)), ("bn2", nn.BatchNorm2d(4))])),
        ("a_relu", nn.ReLU()),
        ("b", Block([("conv1", conv(4, 8, 2)), ("bn1", nn.BatchNorm2d(8)), ("relu1", nn.ReLU()),
                     ("conv2", conv(8, 8)), ("bn2", nn.BatchNorm2d(8))],
                    [conv(4, 8, 2, k=1), nn.BatchNorm2d(8)])),
        ("b_relu", nn.ReLU()),
        ("c", Block([("bias1a", Bias()), ("conv1", conv(8, 12, 2)), ("bias1b", Bias()), ("relu1", nn.ReLU()),
                     ("bias2a", Bias()), ("conv2", conv(12, 12)), ("scale", Scale()), ("bias2b", Bias())], "pad")),
        ("c_relu", nn.ReLU()),
        ("pool", nn.AvgPool2d(2)), ("gap", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()),
        ("fc", nn.Linear(12, 5)), ("out", nn.LogSoftmax(dim=1)),
    ]))


def make_resnet():
    torch.manual_seed(SEED)
    net = make_net()
    with torch.no_grad():
        for m in net.modules():  # registration order, which is named_parameters order
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape))
            elif isinstance(m, Scale):
                m.weight.fill_(0.7)
            elif isinstance(m, Bias):
                m.bias.copy_(0.1 * torch.randn(1))
    out = {f"init.{n}": detached(p) for n, p in net.named_parameters()}
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    net.train()
    y = net(x)
    dy = torch.randn(y.shape)
    (y * dy).sum().backward()
    out.update({"x": detached(x), "dy": dy, "y_train": detached(y), "dx": detached(x.grad)})
    for n, p in net.named_parameters():
        out[f"grad.{n}"] = detached(p.grad)
    for n, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            out[f"after.{n}.running_mean"] = detached(m.running_mean)
            out[f"after.{n}.running_var"] = detached(m.running_var)
    net.eval()
    with torch.no_grad():
        out["y_eval"] = net(x).detach().clone()
    write_fixture("resnet_blocks.safetensors", out, {"seed": str(SEED), "spec": SPEC})
