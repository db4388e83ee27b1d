"""bnlab recalibrate against PyTorch 1.13's torch.optim.swa_utils.update_bn, on real MNIST.

bnlab trains the seed network (with its Dropout p=0.25) for a short run and saves it. Then both
re-estimate every BN layer's running statistics over the same batches, the first BATCHES x
BATCH_SIZE training images in file order, with dropout off (Li et al.'s remedy; in PyTorch,
dropout1.p = 0 during update_bn):
- running_mean and running_var agree to float rounding: |bnlab - torch| <= ATOL + RTOL * |torch|
  (the whole-network tolerance of tests/pytorch_parity_test.cpp: the statistics of fc1_bn come
  through eight float32 layers summed in different orders);
- num_batches_tracked is BATCHES on both (update_bn leaves it so);
- test accuracy on the first TEST_IMAGES test images agrees within 0.05 points (so, on 2,000
  images, exactly).
And bnlab's --dropout on changes only what Dropout feeds (fc1_bn), not the BN layers before it.

Usage: /usr/bin/python3 tests/recalibrate_pytorch.py BNLAB_BINARY   (honours $BNLAB_DATA)
"""
import os
import re
import subprocess
import sys
import tempfile

import torch
from torch.optim.swa_utils import update_bn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pytorch_roundtrip import mnist, safetensors_io, Net  # noqa: E402

STEPS, BATCHES, BATCH_SIZE = 100, 40, 64
TEST_IMAGES = 2000
RTOL, ATOL = 1e-4, 1e-5
BN_LAYERS = ("conv1_bn", "conv2_bn", "fc1_bn")


def run(bnlab, *args):
    r = subprocess.run([bnlab, *args, "--threads", "2"], check=True, capture_output=True, text=True)
    return r.stdout


def recalibrate(bnlab, weights, out, dropout, test_images):
    log = run(bnlab, "recalibrate", "--weights", weights, "--out", out, "--batches", str(BATCHES),
              "--batch-size", str(BATCH_SIZE), "--dropout", dropout, "--limit-test", str(test_images))
    accuracy = float(re.search(r"test accuracy after: +([0-9.]+)%", log).group(1))
    return safetensors_io.load(out)[0], accuracy


def main():
    bnlab = sys.argv[1]
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as work:
        trained = os.path.join(work, "trained.safetensors")
        run(bnlab, "train", "--max-steps", str(STEPS), "--limit-train", str(STEPS * BATCH_SIZE), "--limit-test", "100",
            "--save", trained, "--checkpoint", os.path.join(work, "ck.safetensors"))
        ours, our_accuracy = recalibrate(bnlab, trained, os.path.join(work, "off.safetensors"), "off", TEST_IMAGES)
        with_dropout, _ = recalibrate(bnlab, trained, os.path.join(work, "on.safetensors"), "on", 100)

        net = Net()
        net.load_state_dict(safetensors_io.load(trained)[0], strict=True)
        x, _ = mnist("train", BATCHES * BATCH_SIZE)
        net.dropout1.p = 0.0  # dropout off while the statistics are taken
        update_bn([x[i * BATCH_SIZE:(i + 1) * BATCH_SIZE] for i in range(BATCHES)], net)
        net.dropout1.p = 0.25

        failures = []
        for bn in BN_LAYERS:
            module = getattr(net, bn)
            for stat in ("running_mean", "running_var"):
                theirs, mine = getattr(module, stat), ours[f"{bn}.{stat}"]
                diff = (mine - theirs).abs()
                excess = (diff - (ATOL + RTOL * theirs.abs())).max().item()
                print(f"{bn}.{stat}: max |bnlab - torch| = {diff.max().item():.3g}")
                if excess > 0:
                    failures.append(f"{bn}.{stat} differs by {diff.max().item():.3g}")
            for got in (ours[f"{bn}.num_batches_tracked"].item(), module.num_batches_tracked.item()):
                if got != BATCHES:
                    failures.append(f"{bn}.num_batches_tracked is {got}, not {BATCHES}")

        tx, labels = mnist("t10k", TEST_IMAGES)
        net.eval()
        with torch.no_grad():
            their_accuracy = (net(tx).argmax(1) == labels).float().mean().item() * 100
        print(f"test accuracy after recalibration: bnlab {our_accuracy:.2f}%, PyTorch {their_accuracy:.2f}%")
        if abs(our_accuracy - their_accuracy) > 0.05:
            failures.append(f"accuracy {our_accuracy:.2f}% against PyTorch's {their_accuracy:.2f}%")

        for bn in ("conv1_bn", "conv2_bn"):  # before Dropout: the same bits either way
            if not torch.equal(with_dropout[f"{bn}.running_mean"], ours[f"{bn}.running_mean"]):
                failures.append(f"--dropout on changed {bn}, which Dropout does not feed")
        if torch.equal(with_dropout["fc1_bn.running_var"], ours["fc1_bn.running_var"]):
            failures.append("--dropout on gave fc1_bn the statistics of --dropout off")

    if failures:
        sys.exit("recalibrate_pytorch: " + "; ".join(failures))
    print("recalibrate_pytorch: ok")


if __name__ == "__main__":
    main()
