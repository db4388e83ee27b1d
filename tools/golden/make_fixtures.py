"""Generate bnlab's golden test fixtures with PyTorch.

Run from the repository root with Debian's interpreter (the one that has torch):

    /usr/bin/python3 tools/golden/make_fixtures.py

Writes into tests/fixtures/ (created if missing). Everything is deterministic:
torch.set_num_threads(1), and each file re-seeds torch.manual_seed(<its own seed>) (the seed
is in the file's metadata as "seed", or "init_seed" for seed_net). All tensors are float32
("F32") except the BN counters num_batches_tracked*, which are int64 ("I64") of shape [].
Integer class labels are stored as F32 holding exact integer values. Every upstream
gradient dy is randn of y's shape and every backward is of loss = (y * dy).sum(), so dx,
dweight, dbias are vector-Jacobian products with dy. All metadata values are strings.
Format: see safetensors_io.py.

    /usr/bin/python3 tools/golden/make_fixtures.py --out DIR    # elsewhere, e.g. to cmp

The fixtures, their tensors and metadata are documented where they are made:
    golden_batchnorm.py    bn_<variant>.safetensors: eight BatchNorm1d/2d configurations
    golden_norms.py        norm_<variant>.safetensors: GroupNorm, LayerNorm, InstanceNorm1d/2d
    golden_bn_variants.py  bnv_<variant>.safetensors: ghost and frozen BN, Batch Renormalization
    golden_layers.py       conv2d, conv2d_nopad, linear, maxpool2d, relu, log_softmax_nll
    golden_seed_net.py     seed_net.safetensors: the tutorial's network, one training step
    golden_optimizers.py   its Adadelta and SGD steps
    golden_accumulate.py   accumulate_seed_net.safetensors: two steps of gradient accumulation
    golden_resnet.py       resnet_blocks.safetensors: residual blocks, their shortcuts, Scale, Bias, pools
    golden_common.py       writing a file (safetensors_io.py has the format)
"""

import argparse
import os

import torch

import golden_common
from golden_accumulate import make_accumulate
from golden_batchnorm import BN_VARIANTS, make_bn
from golden_bn_variants import make_bn_variants
from golden_layers import make_layers
from golden_norms import make_norms
from golden_resnet import make_resnet
from golden_seed_net import make_seed_net


def main():
    parser = argparse.ArgumentParser(description="Writes bnlab's PyTorch fixtures.")
    parser.add_argument("--out", default=golden_common.OUT_DIR, help="directory (default: tests/fixtures)")
    golden_common.OUT_DIR = parser.parse_args().out
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(golden_common.OUT_DIR, exist_ok=True)
    for v in BN_VARIANTS:
        make_bn(*v)
    make_layers()
    make_norms()
    make_bn_variants()
    make_seed_net()
    make_accumulate()
    make_resnet()


if __name__ == "__main__":
    main()
