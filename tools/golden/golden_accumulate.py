"""The gradient accumulation fixture (make_fixtures.py): the seed network, PyTorch's usual recipe.

accumulate_seed_net.safetensors: two Adadelta steps with K = 4 micro-batches each
==================================================================================
The tutorial's network (seed_net.py) with dropout1.p = 0 and the initial weights of
golden_seed_net.py's closed formula. A training set of 27 images (28x28 uint8, torch.randint
with the seed below) and labels; the batches are the samples 0..15 and 16..26 in file order
(batch size 16, the second the epoch's smaller last batch).
Each batch is normalized as bnlab's gather_batch does, in float32: (x / 255 - mean) / std with
MNIST's mean 0.1307 and std 0.3081, and cut into micro-batches of 16 / 4 = 4 samples (the last
one of the second batch holds the 3 left). The recipe is ill-conditioned at most seeds: a
BatchNorm1d over few samples divides by a tiny batch spread, and ReLU and max-pool ties let
float32 summation order pick the gradient's path, so two correct float32 runs can differ by many
tolerances (26 images at seed 1401: fc1.weight's row sums 4.4 tolerances apart between
PyTorch's float32 and float64 runs on AMD EPYC Zen 4; 27 images at seed 1410: 560). Count and
seed are the ones where float32 and float64 agree to 0.14 of the tolerance in every tensor.
Per batch:
    opt.zero_grad()
    for each micro-batch of m samples (n in the batch):
        loss = F.nll_loss(net(x_micro), y_micro)           # train mode: BN per micro-batch
        (loss / K).backward()            for a full batch   (the usual recipe)
        (loss * (m / n)).backward()      for the last one   (the exact batch mean)
    opt.step()                           # torch.optim.Adadelta(lr=1.0), one step per batch
so BN's running statistics move once per micro-batch: num_batches_tracked ends at 4 + 3 = 7.

Tensors:
    images (27,28,28), labels (27,)  F32 holding the integer values
    loss (2,)    each step's batch loss: the sum of the scaled micro-batch losses
    after.<p>    the parameters after both steps (fc1.weight as .rowsum and .slice, see
                 golden_seed_net.py)
    after.<bn>.running_mean, after.<bn>.running_var, after.<bn>.num_batches_tracked (I64, [])
Metadata: seed, batch_size, accumulate, mean, std, optimizer.
"""

import torch
import torch.nn.functional as F

from golden_common import detached, store_params, write_fixture
from golden_seed_net import init_value_tensor
from seed_net import Net

SEED = 1413
COUNT, BATCH, K = 27, 16, 4
MEAN, STD = 0.1307, 0.3081


def make_accumulate():
    net = Net()
    with torch.no_grad():
        for t, (n, p) in enumerate(net.named_parameters()):
            p.copy_(init_value_tensor(n, t, tuple(p.shape)))
    net.dropout1.p = 0.0
    net.train()

    torch.manual_seed(SEED)
    images = torch.randint(0, 256, (COUNT, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (COUNT,))
    mean = torch.tensor(MEAN, dtype=torch.float32)
    std = torch.tensor(STD, dtype=torch.float32)
    x = ((images.to(torch.float32) / 255.0 - mean) / std).reshape(COUNT, 1, 28, 28)

    opt = torch.optim.Adadelta(net.parameters(), lr=1.0)
    micro = BATCH // K
    losses = []
    for begin in range(0, COUNT, BATCH):
        end = min(begin + BATCH, COUNT)
        n = end - begin
        opt.zero_grad()
        total = 0.0
        for j in range(begin, end, micro):
            idx = slice(j, min(j + micro, end))
            m = idx.stop - idx.start
            loss = F.nll_loss(net(x[idx]), labels[idx])
            scaled = loss / K if n == BATCH else loss * (m / n)
            scaled.backward()
            total += scaled.item()
        opt.step()
        losses.append(total)

    out = {"images": images.to(torch.float32), "labels": labels.to(torch.float32),
           "loss": torch.tensor(losses, dtype=torch.float32)}
    store_params(out, "after", net.named_parameters())
    for bn in ("conv1_bn", "conv2_bn", "fc1_bn"):
        mod = getattr(net, bn)
        out[f"after.{bn}.running_mean"] = detached(mod.running_mean)
        out[f"after.{bn}.running_var"] = detached(mod.running_var)
        out[f"after.{bn}.num_batches_tracked"] = detached(mod.num_batches_tracked).reshape(())
    meta = {"seed": str(SEED), "batch_size": str(BATCH), "accumulate": str(K), "mean": str(MEAN), "std": str(STD),
            "optimizer": "Adadelta(lr=1.0, rho=0.9, eps=1e-6)"}
    write_fixture("accumulate_seed_net.safetensors", out, meta)
