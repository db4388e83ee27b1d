#!/usr/bin/python3
"""PyTorch's side of bench/compare: the same work as build/bench/bnlab_bench, the same JSON keys.

    /usr/bin/python3 bench/torch_bench.py bench [--threads N] [--quick]     # throughput, BN vs copy
    /usr/bin/python3 bench/torch_bench.py mnist --data DIR [--max-steps K]  # one epoch of real MNIST
    /usr/bin/python3 bench/torch_bench.py info [--threads N]                # PyTorch's configuration

Run it with Debian's /usr/bin/python3 (python3-torch). The thread count is fixed before torch is
imported: OMP_NUM_THREADS (ATen's OpenMP pool) and OPENBLAS_NUM_THREADS (the BLAS, which has its
own pthread pool) are both set to N, then torch.set_num_threads(N).
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["bench", "mnist", "info"])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--quick", action="store_true", help="few repetitions: checks that it works")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per batch size")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--train-batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--infer-batch", type=int, default=1000)
    p.add_argument("--infer-reps", type=int, default=10)
    p.add_argument("--bn-reps", type=int, default=50)
    p.add_argument("--bn-shape", type=int, nargs=4, default=[64, 64, 24, 24])
    p.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist"))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0, help="mnist: stop after this many steps (0: no limit)")
    p.add_argument("--limit-test", type=int, default=0, help="mnist: test on the first N images only")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.quick:
        a.steps, a.warmup, a.infer_reps, a.bn_reps = 5, 2, 3, 10
    return a


args = parse_args()
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402  (after the thread variables)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)


class Net(nn.Module):
    """The tutorial's network (../shared/seed/batchnorm-tutorial.md), bnlab's `seed` preset."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv1_bn = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.conv2_bn = nn.BatchNorm2d(64)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128)
        self.fc1_bn = nn.BatchNorm1d(128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(self.conv1_bn(x))
        x = self.conv2(x)
        x = F.relu(self.conv2_bn(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(self.fc1_bn(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


MEAN, STD = 0.1307, 0.3081


def normalize(pixels):
    """uint8 (n, 28, 28) -> float (n, 1, 28, 28), as bnlab's gather_batch and the example's Normalize."""
    return pixels.unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)


def synthetic_images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return normalize(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g))


def median_seconds(warmup, reps, body):
    times = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        body(i)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return statistics.median(times)


def bench_train(batch):
    torch.manual_seed(args.seed)
    model = Net().train()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    x = synthetic_images(batch, args.seed)
    y = (torch.arange(batch) * 7) % 10
    last = {}

    def step(_):
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        last["loss"] = loss.item()

    t = median_seconds(args.warmup, args.steps, step)
    return {"batch": batch, "steps": args.steps, "warmup": args.warmup, "step_ms": 1e3 * t,
            "images_per_s": batch / t, "final_loss": last["loss"]}


def bench_infer():
    batch = args.infer_batch
    torch.manual_seed(args.seed)
    model = Net().eval()
    x = synthetic_images(batch, args.seed + 1)
    sink = [0.0]

    def run(_):
        with torch.inference_mode():
            sink[0] += model(x)[0, 0].item()

    t = median_seconds(max(1, args.warmup // 2), args.infer_reps, run)
    return {"batch": batch, "reps": args.infer_reps, "batch_ms": 1e3 * t, "images_per_s": batch / t,
            "checksum": sink[0]}


def bench_bn():
    """F.batch_norm(training=True) forward (with the running-statistics update) and its backward
    through autograd (dx, dweight, dbias), against copy_ into a preallocated tensor and clone()."""
    N, C, H, W = args.bn_shape
    g = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(N, C, H, W, generator=g) * 2 - 1).requires_grad_()
    dy = torch.rand(N, C, H, W, generator=g) * 2 - 1
    weight = torch.ones(C, requires_grad=True)
    bias = torch.zeros(C, requires_grad=True)
    running_mean, running_var = torch.zeros(C), torch.ones(C)
    dst = torch.empty_like(dy)
    fwd, bwd, copy, clone = [], [], [], []
    for i in range(args.warmup + args.bn_reps):
        x.grad = weight.grad = bias.grad = None
        t0 = time.perf_counter()
        y = F.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.1, eps=1e-5)
        t1 = time.perf_counter()
        y.backward(dy)
        t2 = time.perf_counter()
        dst.copy_(dy)
        t3 = time.perf_counter()
        c = dy.clone()
        t4 = time.perf_counter()
        del c, y
        if i >= args.warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            copy.append(t3 - t2)
            clone.append(t4 - t3)
    ms = lambda v: 1e3 * statistics.median(v)  # noqa: E731
    return {"shape": args.bn_shape, "reps": args.bn_reps, "forward_ms": ms(fwd), "backward_ms": ms(bwd),
            "copy_ms": ms(copy), "clone_ms": ms(clone), "bytes": x.numel() * x.element_size()}


class GhostBatchNorm2d(nn.BatchNorm2d):
    """BN per chunk of virtual_batch samples: what bnlab's virtual_batch computes."""

    def __init__(self, channels, virtual_batch):
        super().__init__(channels)
        self.virtual_batch = virtual_batch

    def forward(self, x):
        return torch.cat([super(GhostBatchNorm2d, self).forward(c) for c in x.split(self.virtual_batch)])


class BatchRenorm2d(nn.BatchNorm2d):
    """Batch Renormalization (Ioffe 2017) in PyTorch's ops, as a PyTorch user would write it
    (PyTorch has no such layer): r_max 3, d_max 5, running statistics as bnlab keeps them."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mean = x.mean((0, 2, 3))
        var = x.var((0, 2, 3), unbiased=False)
        sigma_batch = torch.sqrt(var + self.eps)
        sigma = torch.sqrt(self.running_var + self.eps)
        r = (sigma_batch / sigma).clamp(1 / 3, 3).detach()
        d = ((mean - self.running_mean) / sigma).clamp(-5, 5).detach()
        with torch.no_grad():
            n = x.numel() / x.shape[1]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        x_hat = (x - mean[None, :, None, None]) / sigma_batch[None, :, None, None] * r[None, :, None, None] \
            + d[None, :, None, None]
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def frozen_bn(channels):
    bn = nn.BatchNorm2d(channels)
    bn.eval()  # normalizes with the running statistics; weight and bias still trained
    return bn


def bench_norms():
    """The normalization layers of bnlab_bench's list, at the BN benchmark's shape: training
    forward and backward through autograd (dx and the parameter gradients)."""
    N, C, H, W = args.bn_shape
    modules = {
        "BatchNorm2d": lambda: nn.BatchNorm2d(C),
        "BatchNorm2d virtual_batch=16": lambda: GhostBatchNorm2d(C, 16),
        "BatchNorm2d frozen=stats": lambda: frozen_bn(C),
        "BatchNorm2d renorm=true": lambda: BatchRenorm2d(C),
        "GroupNorm num_groups=8": lambda: nn.GroupNorm(8, C),
        "LayerNorm": lambda: nn.LayerNorm((C, H, W)),
        "InstanceNorm2d": lambda: nn.InstanceNorm2d(C),
    }
    g = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(N, C, H, W, generator=g) * 2 - 1).requires_grad_()
    dy = torch.rand(N, C, H, W, generator=g) * 2 - 1
    out = {}
    for name, make in modules.items():
        m = make()
        if name != "BatchNorm2d frozen=stats":
            m.train()
        fwd, bwd = [], []
        for i in range(args.warmup + args.bn_reps):
            x.grad = None
            m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            y = m(x)
            t1 = time.perf_counter()
            y.backward(dy)
            t2 = time.perf_counter()
            del y
            if i >= args.warmup:
                fwd.append(t1 - t0)
                bwd.append(t2 - t1)
        out[name] = {"forward_ms": 1e3 * statistics.median(fwd), "backward_ms": 1e3 * statistics.median(bwd)}
    return out


def conv_backend():
    """Which ATen kernel runs the network's convolutions: mkldnn_convolution means oneDNN."""
    model = Net().train()
    x = synthetic_images(64, 0)
    with torch.autograd.profiler.profile() as prof:
        model(x).sum().backward()
    names = {e.key for e in prof.key_averages()}
    found = sorted(n for n in names if "conv" in n and n not in ("aten::conv2d", "aten::convolution",
                                                                  "aten::_convolution", "aten::convolution_backward"))
    return found


def loaded_libraries(*words):
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if any(w in os.path.basename(path) for w in words):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def info():
    a = torch.ones(256, 256)
    (a @ a).sum().item()  # loads the BLAS
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "",
        "blas_info": next((s.split("=", 1)[1] for s in torch.__config__.show().replace(",", "\n").split("\n")
                           if s.strip().startswith("BLAS_INFO=")), ""),
        "blas_libraries": loaded_libraries("blas", "dnnl", "mkl"),
        "conv_kernels": conv_backend(),
        "env": {k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")},
    }


# ---- one epoch of real MNIST, the PyTorch example's recipe --------------------------------------

def read_idx(path, magic):
    """An IDX file (raw or .gz) as a uint8 tensor; images (n, rows, cols), labels (n)."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if int.from_bytes(data[0:4], "big") != magic:
        sys.exit(f"torch_bench: {path}: bad magic number")
    n = int.from_bytes(data[4:8], "big")
    if magic == 2051:
        rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).view(n, rows, cols)
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).view(n).long()


class Batches(torch.utils.data.Dataset):
    """Gathers a whole batch of uint8 images by index (fed by a BatchSampler): the DataLoader
    hands out batches that are normalized to float there and then, as bnlab gathers its batches."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, indices):
        idx = torch.as_tensor(indices)
        return normalize(self.images[idx]), self.labels[idx]


def mnist():
    d = args.data
    train_images = read_idx(os.path.join(d, "train-images-idx3-ubyte"), 2051)
    train_labels = read_idx(os.path.join(d, "train-labels-idx1-ubyte"), 2049)
    test_images = read_idx(os.path.join(d, "t10k-images-idx3-ubyte"), 2051)
    test_labels = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte"), 2049)
    if args.limit_test > 0:
        test_images, test_labels = test_images[:args.limit_test], test_labels[:args.limit_test]
    torch.manual_seed(args.seed)
    train_set = Batches(train_images, train_labels)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(train_set), batch_size=64, drop_last=False)
    train_loader = torch.utils.data.DataLoader(train_set, sampler=sampler, batch_size=None)
    test_set = Batches(test_images, test_labels)
    test_sampler = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(test_set), batch_size=1000,
                                                 drop_last=False)
    test_loader = torch.utils.data.DataLoader(test_set, sampler=test_sampler, batch_size=None)

    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    start = time.perf_counter()
    steps, train_seconds, stop = 0, 0.0, False
    for _ in range(args.epochs):
        epoch_start = time.perf_counter()
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            steps += 1
            if args.max_steps and steps >= args.max_steps:
                stop = True
                break
        train_seconds += time.perf_counter() - epoch_start
        model.eval()
        test_loss, correct = 0.0, 0
        with torch.no_grad():
            for data, target in test_loader:
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction="sum").item()
                correct += output.argmax(dim=1).eq(target).sum().item()
        scheduler.step()
        if stop:
            break
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": seconds, "train_seconds": train_seconds,
            "test_accuracy": 100.0 * correct / len(test_set), "test_loss": test_loss / len(test_set),
            "train_images": len(train_set),
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main():
    if args.mode == "info":
        out = info()
    elif args.mode == "mnist":
        out = mnist()
    else:
        out = {"impl": "pytorch", "threads": torch.get_num_threads(), "model": "seed", "train": {}}
        for b in args.train_batches:
            out["train"][str(b)] = bench_train(b)
        out["infer"] = {str(args.infer_batch): bench_infer()}
        out["bn"] = bench_bn()
        out["norms"] = bench_norms()
        out["config"] = info()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
