// The networks the experiments train, as spec text (bnlab/spec.h): the built-in ones of specs/,
// and the deep networks, generated here since their depth and width are parameters.
#pragma once

#include <cstdint>
#include <string>

#include "bnlab/data.h"
#include "bnlab/network.h"

namespace bnlab::experiments {

// A preset's text (specs/<name>.spec), among them "seed-bn-conv-only" (the tutorial's network
// with BN on the two conv layers only) and "paper-mlp" / "paper-mlp-bn" (Ioffe & Szegedy 2015,
// sec. 4.1: 784 -> three fully connected layers of 100 sigmoids -> 10, with BN before each
// sigmoid in the second); an Error for any other name.
std::string model_text(const std::string& name);

// Deep fully connected ReLU networks of `depth` Linear layers, `width` units each:
//   Plain       Flatten, (Linear, ReLU) x (depth-1), Linear, LogSoftmax
//   PlainBN     as Plain with BatchNorm1d before each ReLU
//   ResidualBN  Flatten, Linear, BN, ReLU, then (depth-2)/2 blocks Residual(Linear, BN, ReLU,
//               Linear, BN) + ReLU (He et al. 2016), then Linear, LogSoftmax; depth must be even
enum class DepthVariant { Plain, PlainBN, ResidualBN };
const char* variant_name(DepthVariant v);  // "plain", "plain-bn", "residual-bn"
std::string deep_mlp_text(int64_t depth, DepthVariant variant, int64_t width);

// He et al. 2016's CIFAR ResNet of `depth` = 6n+2 layers (deep_residual.cpp) in `variant`: "bn",
// "none", "skipinit" or "fixup". Blocks are named s<stage>b<block>, each followed by a ReLU; a
// stage's first block strides by 2 with the zero-padding shortcut.
std::string resnet_text(int64_t depth, const std::string& variant);

// Builds `text` for the images of `data` (1 x H x W), initialized from `seed`.
Network build_model(const std::string& text, const std::string& name, const DataSource& data, uint64_t seed);

}  // namespace bnlab::experiments
