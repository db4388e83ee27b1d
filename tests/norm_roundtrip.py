"""bnlab's GroupNorm, LayerNorm and InstanceNorm checkpoints, and those of BatchNorm's variants
(ghost, renorm, frozen: PyTorch's BatchNorm state in all three), load into PyTorch 1.13 with
load_state_dict(strict=True) and give bnlab's eval outputs.

For seed-groupnorm, seed-layernorm and a spec with InstanceNorm2d (with running statistics, and
without): bnlab trains a few steps and saves; the tutorial's Net with the same norm layers
(torch.nn.GroupNorm(8, C), LayerNorm(the per-sample shape), InstanceNorm2d) loads the file
strictly; both evaluate the same MNIST test images in eval mode; the log-probabilities must agree.

Usage: /usr/bin/python3 tests/norm_roundtrip.py BNLAB_BINARY
"""
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pytorch_roundtrip import mnist, torch_eval, safetensors_io  # noqa: E402

TEST_IMAGES = 500
TOLERANCE = 1e-4  # max |log p| difference, as pytorch_roundtrip.py

INSTANCENORM_SPEC = """conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
conv1_in: InstanceNorm2d affine=true track_running_stats=true momentum=0.2
          ReLU
conv2:    Conv2d out_channels=64 kernel_size=3 stride=1
conv2_in: InstanceNorm2d
          ReLU
          MaxPool2d kernel_size=2
dropout1: Dropout p=0.25
          Flatten
fc1:      Linear out_features=128
          ReLU
fc2:      Linear out_features=10
          LogSoftmax
"""

BN_VARIANTS_SPEC = """conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
conv1_bn: BatchNorm2d virtual_batch=16
          ReLU
conv2:    Conv2d out_channels=64 kernel_size=3 stride=1
conv2_bn: BatchNorm2d renorm=true r_max=2 d_max=1
          ReLU
          MaxPool2d kernel_size=2
dropout1: Dropout p=0.25
          Flatten
fc1:      Linear out_features=128
fc1_bn:   BatchNorm1d frozen=all
          ReLU
fc2:      Linear out_features=10
          LogSoftmax
"""


class NormNet(nn.Module):
    """The tutorial's Net with norm(which, shape) after conv1, conv2 and fc1 (None: no layer)."""

    def __init__(self, suffix, norms):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        self.names = []
        for layer, norm in zip(("conv1", "conv2", "fc1"), norms):
            name = f"{layer}_{suffix}" if norm is not None else None
            if name:
                setattr(self, name, norm)
            self.names.append(name)

    def norm(self, i, x):
        return getattr(self, self.names[i])(x) if self.names[i] else x

    def forward(self, x):
        x = F.relu(self.norm(0, self.conv1(x)))
        x = F.relu(self.norm(1, self.conv2(x)))
        x = F.max_pool2d(x, 2); x = self.dropout1(x); x = torch.flatten(x, 1)
        x = F.relu(self.norm(2, self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def check(bnlab, work, model, net, x_test, labels):
    weights = os.path.join(work, "model.safetensors")
    subprocess.run([bnlab, "train", "--model", model, "--max-steps", "10", "--limit-test", "100", "--threads", "2",
                    "--save", weights], check=True, stdout=subprocess.DEVNULL)
    tensors, _ = safetensors_io.load(weights)
    net.load_state_dict(tensors, strict=True)
    out = os.path.join(work, "outputs.safetensors")
    subprocess.run([bnlab, "eval", "--model", model, "--weights", weights, "--limit-test", str(TEST_IMAGES),
                    "--threads", "2", "--outputs", out], check=True, stdout=subprocess.DEVNULL)
    ours, _ = safetensors_io.load(out)
    ours = ours["output"]
    theirs = torch_eval(net, x_test)
    diff = (ours - theirs).abs().max().item()
    same = (ours.argmax(1) == theirs.argmax(1)).all().item()
    print(f"{os.path.basename(model)}: {len(tensors)} tensors loaded strictly; max |log p difference| = {diff:.3g}")
    assert diff < TOLERANCE, f"{model}: outputs differ by {diff}"
    assert same, f"{model}: predictions differ"


def main():
    bnlab = sys.argv[1]
    torch.set_num_threads(2)
    x_test, labels = mnist("t10k", TEST_IMAGES)
    with tempfile.TemporaryDirectory() as work:
        check(bnlab, work, "seed-groupnorm",
              NormNet("gn", [nn.GroupNorm(8, 32), nn.GroupNorm(8, 64), nn.GroupNorm(8, 128)]), x_test, labels)
        check(bnlab, work, "seed-layernorm",
              NormNet("ln", [nn.LayerNorm((32, 26, 26)), nn.LayerNorm((64, 24, 24)), nn.LayerNorm(128)]),
              x_test, labels)
        spec = os.path.join(work, "instancenorm.spec")
        with open(spec, "w") as f:
            f.write(INSTANCENORM_SPEC)
        check(bnlab, work, spec,
              NormNet("in", [nn.InstanceNorm2d(32, affine=True, track_running_stats=True, momentum=0.2),
                             nn.InstanceNorm2d(64), None]), x_test, labels)
        spec = os.path.join(work, "bn-variants.spec")
        with open(spec, "w") as f:
            f.write(BN_VARIANTS_SPEC)
        check(bnlab, work, spec, NormNet("bn", [nn.BatchNorm2d(32), nn.BatchNorm2d(64), nn.BatchNorm1d(128)]),
              x_test, labels)


if __name__ == "__main__":
    main()
