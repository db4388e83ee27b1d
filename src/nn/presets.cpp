// Built-in networks. `seed` is exactly the tutorial's Net (../shared/seed/batchnorm-tutorial.md),
// with its attribute names, so that checkpoints load into that class with strict=True.
#include <string>
#include <vector>

#include "bnlab/spec.h"

namespace bnlab {
namespace {

struct Preset {
  const char* name;
  const char* text;
};

constexpr Preset kPresets[] = {
    {"seed", R"(# The tutorial's network: BN before each ReLU.
conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
conv1_bn: BatchNorm2d
          ReLU
conv2:    Conv2d out_channels=64 kernel_size=3 stride=1
conv2_bn: BatchNorm2d
          ReLU
          MaxPool2d kernel_size=2
dropout1: Dropout p=0.25
          Flatten
fc1:      Linear out_features=128
fc1_bn:   BatchNorm1d
          ReLU
fc2:      Linear out_features=10
          LogSoftmax
)"},
    {"seed-nobn", R"(# The tutorial's network without batch normalization.
conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
          ReLU
conv2:    Conv2d out_channels=64 kernel_size=3 stride=1
          ReLU
          MaxPool2d kernel_size=2
dropout1: Dropout p=0.25
          Flatten
fc1:      Linear out_features=128
          ReLU
fc2:      Linear out_features=10
          LogSoftmax
)"},
    {"seed-bn-after-relu", R"(# The tutorial's network with BN after each ReLU instead of before.
conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
          ReLU
conv1_bn: BatchNorm2d
conv2:    Conv2d out_channels=64 kernel_size=3 stride=1
          ReLU
conv2_bn: BatchNorm2d
          MaxPool2d kernel_size=2
dropout1: Dropout p=0.25
          Flatten
fc1:      Linear out_features=128
          ReLU
fc1_bn:   BatchNorm1d
fc2:      Linear out_features=10
          LogSoftmax
)"},
};

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

std::string preset_text(std::string_view name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p.text;
  return {};
}

}  // namespace bnlab
