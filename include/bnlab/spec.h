// The network description format: one layer per line, `#` starts a comment.
//
//     # the tutorial's network
//     conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
//     conv1_bn: BatchNorm2d
//               ReLU
//
// A line is `[name:] Type key=value...`. The name becomes the state_dict prefix ("conv1.weight");
// an unnamed layer is named by its index, as in nn.Sequential. Sizes of inputs are inferred.
// Unknown types or keys, bad values and impossible shapes are errors "<file>:<line>:<col>: ...".
//
// A residual block, y = x + f(x), is a line `[name:] Residual`, the lines of f, and a line `end`
// (indentation is free; blocks nest). Its tensors are "<block>.<layer>.<tensor>"; unnamed layers
// inside are numbered from 0 within the block. f must keep the shape of its input.
// docs/guide.md lists every layer and key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bnlab/network.h"

namespace bnlab {

struct SpecSetting {
  std::string key, value;
  int column = 0;
};

struct SpecLine {
  std::string name;  // empty when not given
  std::string type;
  std::vector<SpecSetting> settings;
  int line = 0, column = 0;
};

struct NetworkSpec {
  std::string source;  // file name or "preset:<name>", for messages
  std::vector<SpecLine> layers;
};

NetworkSpec parse_spec(std::string_view text, const std::string& source);

// Builds the layers, checks every key and shape; `input_shape` is per sample, e.g. {1, 28, 28}.
Network build_network(const NetworkSpec& spec, const Shape& input_shape);

// A spec as text that parse_spec reads back to the same layers.
std::string spec_text(const NetworkSpec& spec);
// A built layer as a spec line (its name, type and Layer::spec_settings()), and a built network
// as a spec: what rebuilds it with the same state_dict names (residual blocks included).
SpecLine spec_line(const NamedLayer& layer);
SpecLine block_end();  // the `end` line that closes a Residual block
SpecLine shortcut_divider();  // the `shortcut` line between a block's body and its shortcut layers
NetworkSpec network_spec(const Network& net);
std::string spec_text(const Network& net);

// Names of the built-in networks (the files of specs/, compiled in): "seed", "seed-nobn",
// "seed-bn-after-relu", "seed-bn-conv-only", "paper-mlp", "paper-mlp-bn", "seed-groupnorm",
// "seed-layernorm".
std::vector<std::string> preset_names();
// The spec text of a preset, or an empty string for an unknown name.
std::string preset_text(std::string_view name);

// `model` is a preset name or the path of a spec file.
NetworkSpec load_spec(const std::string& model);

}  // namespace bnlab
