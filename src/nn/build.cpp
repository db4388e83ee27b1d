// From a parsed NetworkSpec to a Network: each layer type's keys, their values and defaults, and
// residual blocks (`Residual` ... `end`) built into one layer that owns its body.
#include <charconv>
#include <cmath>
#include <optional>
#include <functional>
#include <map>
#include <set>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "bnlab/spec.h"

namespace bnlab {
namespace {

// Reads the key=value settings of one spec line, each at most once, and reports the first
// unknown key with its position.
class Settings {
 public:
  Settings(const NetworkSpec& spec, const SpecLine& line) : spec_(spec), line_(line) {}

  [[noreturn]] void error(int column, const std::string& what) const {
    throw Error(spec_.source + ":" + std::to_string(line_.line) + ":" + std::to_string(column) +
                ": " + line_.type + ": " + what);
  }

  const SpecSetting* find(const std::string& key) {
    used_.insert(key);
    const SpecSetting* found = nullptr;
    for (const SpecSetting& s : line_.settings) {
      if (s.key != key) continue;
      if (found) error(s.column, key + ": given twice");
      found = &s;
    }
    return found;
  }

  int64_t integer(const std::string& key, std::optional<int64_t> fallback, int64_t min) {
    const SpecSetting* s = find(key);
    if (!s) {
      if (!fallback) error(line_.column, key + ": required");
      return *fallback;
    }
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s->value.data(), s->value.data() + s->value.size(), v);
    if (ec != std::errc() || end != s->value.data() + s->value.size()) {
      error(s->column, key + ": '" + s->value + "' is not an integer");
    }
    if (v < min) error(s->column, key + ": must be at least " + std::to_string(min));
    return v;
  }

  double real(const std::string& key, double fallback) {
    const SpecSetting* s = find(key);
    if (!s) return fallback;
    return parse_real(*s);
  }

  std::optional<double> real_or_none(const std::string& key, double fallback) {
    const SpecSetting* s = find(key);
    if (!s) return fallback;
    if (s->value == "none" || s->value == "None") return std::nullopt;
    return parse_real(*s);
  }

  bool boolean(const std::string& key, bool fallback) {
    const SpecSetting* s = find(key);
    if (!s) return fallback;
    if (s->value == "true" || s->value == "True") return true;
    if (s->value == "false" || s->value == "False") return false;
    error(s->column, key + ": '" + s->value + "' is not true or false");
  }

  void reject_unknown() const {
    for (const SpecSetting& s : line_.settings)
      if (!used_.count(s.key)) error(s.column, "unknown key '" + s.key + "'");
  }

 private:
  double parse_real(const SpecSetting& s) const {
    double v = 0;
    auto [end, ec] = std::from_chars(s.value.data(), s.value.data() + s.value.size(), v);
    if (ec != std::errc() || end != s.value.data() + s.value.size() || !std::isfinite(v)) {
      error(s.column, s.key + ": '" + s.value + "' is not a number");
    }
    return v;
  }

  const NetworkSpec& spec_;
  const SpecLine& line_;
  std::set<std::string> used_;
};

// BatchNorm's variants (BatchNormOptions in layers.h): the errors at the key that causes them.
BatchNormOptions batchnorm_options(Settings& s) {
  s.find("num_features");  // checked against the inferred size after setup
  BatchNormOptions o;
  o.eps = s.real("eps", 1e-5);
  o.momentum = s.real_or_none("momentum", 0.1);
  o.affine = s.boolean("affine", true);
  o.track_running_stats = s.boolean("track_running_stats", true);
  o.virtual_batch = s.integer("virtual_batch", 0, 1);
  if (const SpecSetting* f = s.find("frozen")) {
    if (f->value == "stats") o.freeze = BatchNormFreeze::Stats;
    else if (f->value == "all") o.freeze = BatchNormFreeze::All;
    else if (f->value != "none") s.error(f->column, "frozen: '" + f->value + "' is not none, stats or all");
    if (o.freeze != BatchNormFreeze::None && !o.track_running_stats) {
      s.error(f->column, "frozen: needs track_running_stats (it normalizes with them)");
    }
    if (o.freeze != BatchNormFreeze::None && o.virtual_batch) {
      s.error(f->column, "frozen: uses no batch statistics, so virtual_batch has no meaning with it");
    }
  }
  const bool renorm = s.boolean("renorm", false);
  const char* renorm_keys[] = {"r_max", "d_max", "renorm_warmup", "renorm_ramp"};
  if (!renorm) {
    for (const char* key : renorm_keys)
      if (const SpecSetting* k = s.find(key)) s.error(k->column, std::string(key) + ": needs renorm=true");
    return o;
  }
  const int renorm_column = s.find("renorm")->column;
  if (!o.track_running_stats) s.error(renorm_column, "renorm: needs track_running_stats (r and d compare with them)");
  if (o.virtual_batch) s.error(renorm_column, "renorm: and virtual_batch together are not supported");
  if (o.freeze != BatchNormFreeze::None) s.error(renorm_column, "renorm: a frozen BatchNorm uses no batch statistics");
  BatchRenormOptions r;
  r.r_max = s.real("r_max", r.r_max);
  if (!(r.r_max >= 1)) s.error(s.find("r_max")->column, "r_max: must be at least 1");  // found: 3 is valid
  r.d_max = s.real("d_max", r.d_max);
  if (!(r.d_max >= 0)) s.error(s.find("d_max")->column, "d_max: must be at least 0");  // found: 5 is valid
  r.warmup = s.integer("renorm_warmup", 0, 0);
  r.ramp = s.integer("renorm_ramp", 0, 0);
  o.renorm = r;
  return o;
}

// eps of the normalization layers: positive, the error at the value.
double positive_eps(Settings& s) {
  const double eps = s.real("eps", 1e-5);
  if (!(eps > 0)) s.error(s.find("eps")->column, "eps: must be positive");  // found: 1e-5 is valid
  return eps;
}

InstanceNormOptions instancenorm_options(Settings& s) {
  s.find("num_features");  // checked against the inferred size after setup
  const double eps = positive_eps(s);
  const double momentum = s.real("momentum", 0.1);
  if (!(momentum >= 0 && momentum <= 1)) s.error(s.find("momentum")->column, "momentum: must be in [0, 1]");
  return {.eps = eps,
          .momentum = momentum,
          .affine = s.boolean("affine", false),
          .track_running_stats = s.boolean("track_running_stats", false)};
}

// The `init` and `init_gain` keys of Conv2d and Linear (WeightInit in layers.h).
std::pair<WeightInit, double> weight_init(Settings& s) {
  WeightInit init = WeightInit::Default;
  if (const SpecSetting* k = s.find("init")) {
    if (k->value == "zeros") init = WeightInit::Zeros;
    else if (k->value == "kaiming_normal") init = WeightInit::KaimingNormal;
    else if (k->value != "default") s.error(k->column, "init: '" + k->value + "' is not default, zeros or kaiming_normal");
  }
  const double gain = s.real("init_gain", 1.0);
  if (const SpecSetting* k = s.find("init_gain")) {
    if (init != WeightInit::KaimingNormal) s.error(k->column, "init_gain: needs init=kaiming_normal");
    if (!(gain > 0 && gain <= 100)) s.error(k->column, "init_gain: must be in (0, 100]");
  }
  return {init, gain};
}

// A residual block: `[name:] Residual [shortcut=pad]`, its layers, optionally a line `shortcut`
// and the shortcut's layers, then a line `end` (parse_spec checks nesting).
constexpr const char* kResidual = "Residual";
constexpr const char* kShortcut = "shortcut";
constexpr const char* kBlockEnd = "end";

using Factory = std::function<std::unique_ptr<Layer>(Settings&)>;

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> table = {
      {"Conv2d",
       [](Settings& s) {
         const auto [init, gain] = weight_init(s);
         return make_conv2d({.out_channels = s.integer("out_channels", std::nullopt, 1),
                             .kernel_size = s.integer("kernel_size", std::nullopt, 1),
                             .stride = s.integer("stride", 1, 1),
                             .padding = s.integer("padding", 0, 0),
                             .bias = s.boolean("bias", true),
                             .init = init,
                             .init_gain = gain});
       }},
      {"Linear",
       [](Settings& s) {
         const auto [init, gain] = weight_init(s);
         return make_linear({.out_features = s.integer("out_features", std::nullopt, 1),
                             .bias = s.boolean("bias", true),
                             .init = init,
                             .init_gain = gain});
       }},
      {"BatchNorm1d",
       [](Settings& s) { return make_batchnorm(BatchNormKind::OneD, batchnorm_options(s)); }},
      {"BatchNorm2d",
       [](Settings& s) { return make_batchnorm(BatchNormKind::TwoD, batchnorm_options(s)); }},
      {"GroupNorm",
       [](Settings& s) {
         s.find("num_channels");  // checked against the inferred size after setup
         return make_groupnorm({.num_groups = s.integer("num_groups", std::nullopt, 1),
                                .eps = positive_eps(s),
                                .affine = s.boolean("affine", true)});
       }},
      {"LayerNorm",
       [](Settings& s) {
         return make_layernorm({.eps = positive_eps(s), .elementwise_affine = s.boolean("elementwise_affine", true)});
       }},
      {"InstanceNorm1d",
       [](Settings& s) { return make_instancenorm(InstanceNormKind::OneD, instancenorm_options(s)); }},
      {"InstanceNorm2d",
       [](Settings& s) { return make_instancenorm(InstanceNormKind::TwoD, instancenorm_options(s)); }},
      {"ReLU", [](Settings&) { return make_relu(); }},
      {"MaxPool2d",
       [](Settings& s) {
         const int64_t kernel = s.integer("kernel_size", std::nullopt, 1);
         return make_maxpool2d({.kernel_size = kernel,
                                .stride = s.integer("stride", kernel, 1),
                                .padding = s.integer("padding", 0, 0)});
       }},
      {"AvgPool2d",
       [](Settings& s) {
         const int64_t kernel = s.integer("kernel_size", std::nullopt, 1);
         return make_avgpool2d({.kernel_size = kernel,
                                .stride = s.integer("stride", kernel, 1),
                                .padding = s.integer("padding", 0, 0)});
       }},
      {"AdaptiveAvgPool2d",
       [](Settings& s) {
         if (s.integer("output_size", std::nullopt, 1) != 1) {
           s.error(s.find("output_size")->column, "output_size: only 1 (global average pooling) is supported");
         }
         return make_global_avgpool();
       }},
      {"Scale",
       [](Settings& s) {
         const double init = s.real("init", 1.0);
         if (init != 0 && init != 1) s.error(s.find("init")->column, "init: must be 0 (SkipInit) or 1 (Fixup)");
         return make_scale(init);
       }},
      {"Bias", [](Settings&) { return make_bias(); }},
      {"Dropout",
       [](Settings& s) {
         const double p = s.real("p", 0.5);
         if (!(p >= 0 && p < 1)) s.error(s.find("p")->column, "p: must be in [0, 1)");  // found: 0.5 is valid
         return make_dropout({.p = p});
       }},
      {"ChannelNoise",
       [](Settings& s) {
         const double shift = s.real("shift", 0.5), scale = s.real("scale", 1.5);  // the defaults are valid
         if (!(shift >= 0 && shift <= 100)) s.error(s.find("shift")->column, "shift: must be in [0, 100]");
         if (!(scale >= 1 && scale <= 100)) s.error(s.find("scale")->column, "scale: must be in [1, 100]");
         return make_channel_noise({.shift = shift, .scale = scale});
       }},
      {"Flatten", [](Settings&) { return make_flatten(); }},
      {"LogSoftmax", [](Settings&) { return make_log_softmax(); }},
      {"Sigmoid", [](Settings&) { return make_sigmoid(); }},
      {"Tanh", [](Settings&) { return make_tanh(); }},
  };
  return table;
}

[[noreturn]] void line_error(const NetworkSpec& spec, const SpecLine& line, int column, const std::string& what) {
  throw Error(spec.source + ":" + std::to_string(line.line) + ":" + std::to_string(column) + ": " + what);
}

// Sets `layer` up on `shape` (replaced by its output shape); a shape error names the line.
void setup_layer(const NetworkSpec& spec, const SpecLine& line, Layer& layer, Shape& shape) {
  try {
    shape = layer.setup(shape);
  } catch (const Error& e) {
    line_error(spec, line, line.column, e.what());
  }
  for (const SpecSetting& s : line.settings) {
    // BatchNorm, InstanceNorm (num_features), GroupNorm (num_channels): output shape = input shape
    if (s.key != "num_features" && s.key != "num_channels") continue;
    if (s.value != std::to_string(shape[0])) {
      line_error(spec, line, s.column, line.type + ": " + s.key + ": " + s.value + " given, but the input has " +
                                           std::to_string(shape[0]) + " channels");
    }
  }
}

std::unique_ptr<Layer> build_block(const NetworkSpec& spec, const SpecLine& line, Settings& settings, size_t& pos,
                                   const Shape& shape);

// The layers of one nesting level, from spec.layers[pos] up to the `shortcut` or `end` that ends
// it (in_block; `stop` becomes that line's type) or the end of the spec; `pos` moves past them,
// `shape` becomes their output shape. A `Residual` line takes the lines up to its matching `end`
// as its body and shortcut. Unnamed layers are named by their index in their level (after
// `unnamed`, "shortcut." for a shortcut's), a block counting as one layer, as in nn.Sequential.
std::vector<NamedLayer> build_level(const NetworkSpec& spec, size_t& pos, Shape& shape, bool in_block,
                                    std::string& stop, const std::string& unnamed = "") {
  std::vector<NamedLayer> layers;
  std::set<std::string> names;
  while (pos < spec.layers.size()) {
    const SpecLine& line = spec.layers[pos++];
    if (line.type == kBlockEnd || line.type == kShortcut) {
      if (!in_block) line_error(spec, line, line.column, "'" + line.type + "' outside a Residual block");
      stop = line.type;
      return layers;
    }
    Settings settings(spec, line);
    std::unique_ptr<Layer> layer;
    if (line.type == kResidual) {
      layer = build_block(spec, line, settings, pos, shape);
    } else {
      auto factory = factories().find(line.type);
      if (factory == factories().end()) {
        std::string known;
        for (const auto& [type, _] : factories()) known += (known.empty() ? "" : ", ") + type;
        line_error(spec, line, line.column, "unknown layer type '" + line.type + "' (known: " + known + ", " +
                                                kResidual + " ... [shortcut ...] end)");
      }
      layer = factory->second(settings);
      settings.reject_unknown();
    }
    const std::string name = line.name.empty() ? unnamed + std::to_string(layers.size()) : line.name;
    if (!names.insert(name).second) line_error(spec, line, 1, "layer name '" + name + "' is used twice");
    setup_layer(spec, line, *layer, shape);
    layers.push_back({name, std::move(layer)});
  }
  if (in_block) throw Error(spec.source + ": network: a Residual block is not closed by 'end'");
  return layers;
}

// The block that `line` (a Residual) opens, on input `shape`: its body, and its shortcut's layers
// after a line `shortcut` (their names one namespace with the body's).
std::unique_ptr<Layer> build_block(const NetworkSpec& spec, const SpecLine& line, Settings& settings, size_t& pos,
                                   const Shape& shape) {
  Shortcut skip = Shortcut::Identity;
  const SpecSetting* key = settings.find("shortcut");
  if (key && key->value == "pad") skip = Shortcut::ZeroPad;
  else if (key && key->value != "identity") {
    settings.error(key->column, "shortcut: '" + key->value + "' is not identity or pad (shortcut layers go after a line 'shortcut')");
  }
  settings.reject_unknown();
  Shape inner = shape;
  std::string stop;
  std::vector<NamedLayer> body = build_level(spec, pos, inner, true, stop);
  std::vector<NamedLayer> shortcut;
  if (stop == kShortcut) {
    const SpecLine& divider = spec.layers[pos - 1];
    if (skip == Shortcut::ZeroPad) {
      line_error(spec, divider, divider.column, "shortcut layers and shortcut=pad (line " + std::to_string(line.line) +
                                                    ") exclude each other");
    }
    Shape from = shape;
    shortcut = build_level(spec, pos, from, true, stop, "shortcut.");
    for (const NamedLayer& s : shortcut)
      for (const NamedLayer& b : body)
        if (s.name == b.name) line_error(spec, divider, divider.column, "layer name '" + s.name + "' is used in the body and the shortcut");
  }
  return make_residual(std::move(body), skip, std::move(shortcut));
}

}  // namespace

Network build_network(const NetworkSpec& spec, const Shape& input_shape) {
  size_t pos = 0;
  Shape shape = input_shape;
  std::string stop;
  std::vector<NamedLayer> layers = build_level(spec, pos, shape, false, stop);
  return Network(std::move(layers), input_shape);
}

}  // namespace bnlab
