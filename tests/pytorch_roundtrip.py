"""Moves models between bnlab and PyTorch 1.13, both ways, on real MNIST test images.

1. bnlab trains the seed network briefly and saves it; PyTorch loads the file into the
   tutorial's Net with load_state_dict(strict=True); both evaluate the same test images in eval
   mode; the log-probabilities must agree (max abs difference reported) and so must accuracy.
2. PyTorch trains the tutorial's Net briefly and saves its state_dict as safetensors; bnlab
   evaluates it; same comparison.

Usage: /usr/bin/python3 tests/pytorch_roundtrip.py BNLAB_BINARY
"""
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "golden"))
import safetensors_io  # noqa: E402
from seed_net import Net  # noqa: E402

TEST_IMAGES = 2000
TOLERANCE = 1e-4  # max |log p| difference; float32 through eight layers


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def mnist_dir():
    """Where MNIST is, by the rule of bnlab's own lookup (src/data/dataset.cpp): $BNLAB_DATA/mnist,
    then data/mnist in the working directory, then data/mnist in the checkout."""
    candidates = [os.path.join(os.environ["BNLAB_DATA"], "mnist")] if os.environ.get("BNLAB_DATA") else []
    candidates += [os.path.join("data", "mnist"), os.path.join(ROOT, "data", "mnist")]
    for d in candidates:
        if os.path.exists(os.path.join(d, "train-images-idx3-ubyte")):
            return d
    sys.exit("pytorch_roundtrip: MNIST not found in " + ", ".join(candidates) + ": run scripts/fetch-mnist")


def mnist(split, limit):
    base = os.path.join(mnist_dir(), split)
    images = read_idx(base + "-images-idx3-ubyte")[:limit]
    labels = read_idx(base + "-labels-idx1-ubyte")[:limit].long()
    x = ((images.float() / 255.0) - 0.1307) / 0.3081
    return x.unsqueeze(1), labels


def torch_eval(net, x):
    net.eval()
    with torch.no_grad():
        return net(x)


def bnlab_eval(bnlab, weights, work):
    out = os.path.join(work, "outputs.safetensors")
    subprocess.run([bnlab, "eval", "--weights", weights, "--limit-test", str(TEST_IMAGES), "--threads", "2",
                    "--outputs", out], check=True, stdout=subprocess.DEVNULL)
    tensors, _ = safetensors_io.load(out)
    return tensors["output"]


def compare(name, ours, theirs, labels):
    diff = (ours - theirs).abs().max().item()
    acc_ours = (ours.argmax(1) == labels).float().mean().item() * 100
    acc_theirs = (theirs.argmax(1) == labels).float().mean().item() * 100
    print(f"{name}: max |log p difference| = {diff:.3g}; accuracy bnlab {acc_ours:.2f}%, PyTorch {acc_theirs:.2f}%")
    assert diff < TOLERANCE, f"{name}: outputs differ by {diff}"
    assert acc_ours == acc_theirs, f"{name}: accuracies differ"


def main():
    bnlab = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x_test, y_test = mnist("t10k", TEST_IMAGES)
    with tempfile.TemporaryDirectory() as work:
        # 1. bnlab -> PyTorch
        model = os.path.join(work, "bnlab.safetensors")
        subprocess.run([bnlab, "train", "--limit-train", "6400", "--limit-test", "100", "--threads", "2",
                        "--save", model], check=True, stdout=subprocess.DEVNULL)
        tensors, _ = safetensors_io.load(model)
        net = Net()
        net.load_state_dict(tensors, strict=True)
        compare("bnlab -> PyTorch", bnlab_eval(bnlab, model, work), torch_eval(net, x_test), y_test)

        # 2. PyTorch -> bnlab: the tutorial's recipe, thirty steps
        x_train, y_train = mnist("train", 1920)
        net = Net()
        opt = torch.optim.Adadelta(net.parameters(), lr=1.0)
        net.train()
        for i in range(0, 1920, 64):
            opt.zero_grad()
            F.nll_loss(net(x_train[i:i + 64]), y_train[i:i + 64]).backward()
            opt.step()
        exported = os.path.join(work, "torch.safetensors")
        safetensors_io.save(exported, {k: v.detach().contiguous() for k, v in net.state_dict().items()}, {"format": "pt"})
        compare("PyTorch -> bnlab", bnlab_eval(bnlab, exported, work), torch_eval(net, x_test), y_test)


if __name__ == "__main__":
    main()
