// The network as an ONNX graph, layer by layer, in eval mode (see onnx_export.h). Each layer kind
// becomes the operators below; a BatchNorm of any kind exports through its eval-mode map with
// running statistics, which is what it computes at inference whatever its training options.
//   Conv2d      Conv                    Linear       Gemm (transB)
//   BatchNorm   BatchNormalization      ReLU, Sigmoid, Tanh, LogSoftmax, Flatten, MaxPool2d: same
//   Dropout     nothing (eval)          Residual     the body, then Add with the skip path:
//     x itself, the shortcut's layers, or for shortcut=pad a 1x1 Conv of stride s with a constant
//     0/1 weight that copies x's channels and adds zero ones (exact: x * 1 plus zeros)
//   AvgPool2d   AveragePool (count_include_pad=1)   AdaptiveAvgPool2d  GlobalAveragePool
//   Scale, Bias  Mul, Add with their [1] tensor
//   ChannelNoise  Mul by its eval scale (1 + scale) / 2
//   GroupNorm, LayerNorm, InstanceNorm: x as (N, G, -1) (G = C for InstanceNorm, 1 for LayerNorm),
//     InstanceNormalization without affine, back to x's shape, then the affine as Mul and Add;
//     InstanceNorm with running statistics is a BatchNormalization.
#include "io/onnx_export.h"

#include <charconv>
#include <map>
#include <span>

#include "bnlab/atomic_file.h"
#include "bnlab/error.h"
#include "io/onnx_graph.h"
#include "layers/layer_kinds.h"

namespace bnlab {
namespace {

using onnx_export::GraphBuilder;
using onnx_export::float_attr;
using onnx_export::int_attr;
using onnx_export::ints_attr;

// A setting as the spec writes it (Layer::spec_settings leaves defaults out).
std::string setting(const Layer& layer, std::string_view key, std::string_view fallback) {
  for (const auto& [k, v] : layer.spec_settings()) {
    if (k == key) return v;
  }
  return std::string(fallback);
}
int64_t int_setting(const Layer& layer, std::string_view key, int64_t fallback) {
  return std::stoll(setting(layer, key, std::to_string(fallback)));
}
double eps_setting(const Layer& layer) { return std::stod(setting(layer, "eps", "1e-05")); }

bool declares(const Layer& layer, std::string_view tensor) {
  for (const TensorDecl& d : layer.declare()) {
    if (d.name == tensor) return true;
  }
  return false;
}

// Output size of a convolution or pooling window along one axis (floor, as PyTorch).
int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}

class Exporter {
 public:
  Exporter(GraphBuilder& g, Network& net) : g_(g) {
    for (TensorView& t : net.state_dict()) tensors_[t.name] = t;
  }

  // Emits one level of layers (their state_dict prefix `prefix`) on value x of per-sample shape
  // `shape`; returns the last value and leaves `shape` the level's output shape.
  std::string level(std::span<const NamedLayer> layers, const std::string& prefix, std::string x, Shape& shape) {
    for (const NamedLayer& entry : layers) x = layer(entry, prefix, x, shape);
    return x;
  }

 private:
  GraphBuilder& g_;
  std::map<std::string, TensorView> tensors_;

  // The checkpoint's tensor `key` as an initializer under that name.
  std::string tensor(const std::string& key) {
    const TensorView& t = tensors_.at(key);
    return g_.float_tensor(key, t.shape, static_cast<const float*>(t.data));
  }

  std::string layer(const NamedLayer& entry, const std::string& prefix, const std::string& x, Shape& shape) {
    const Layer& l = *entry.layer;
    const std::string name = prefix + entry.name;
    const std::string label = "layer " + name + " (" + std::string(l.type()) + ")";
    switch (l.kind()) {
      case LayerKind::Conv2d: {
        const int64_t k = int_setting(l, "kernel_size", 0), s = int_setting(l, "stride", 1);
        const int64_t p = int_setting(l, "padding", 0);
        std::vector<std::string> in = {x, tensor(name + ".weight")};
        if (declares(l, "bias")) in.push_back(tensor(name + ".bias"));
        shape = {int_setting(l, "out_channels", 0), window_out(shape[1], k, s, p), window_out(shape[2], k, s, p)};
        return g_.node("Conv", name, in,
                       {ints_attr("kernel_shape", {k, k}), ints_attr("strides", {s, s}), ints_attr("pads", {p, p, p, p})});
      }
      case LayerKind::Linear: {
        std::vector<std::string> in = {x, tensor(name + ".weight")};
        if (declares(l, "bias")) in.push_back(tensor(name + ".bias"));
        shape = {int_setting(l, "out_features", 0)};
        return g_.node("Gemm", name, in, {int_attr("transB", 1)});
      }
      case LayerKind::BatchNorm: {
        if (!as<BatchNormLayer>(l).options().track_running_stats) {
          fail("onnx export", label,
               "track_running_stats=false normalizes each batch with its own statistics, also in eval; "
               "an exported model needs running statistics");
        }
        return running_norm(l, name, x, shape, as<BatchNormLayer>(l).options().eps);
      }
      case LayerKind::InstanceNorm:
        if (declares(l, "running_mean")) return running_norm(l, name, x, shape, eps_setting(l));
        return sample_norm(l, name, x, shape, shape[0], false);
      case LayerKind::GroupNorm:
        return sample_norm(l, name, x, shape, int_setting(l, "num_groups", 0), false);
      case LayerKind::LayerNorm:
        return sample_norm(l, name, x, shape, 1, true);
      case LayerKind::ReLU: return g_.node("Relu", name, {x});
      case LayerKind::Sigmoid: return g_.node("Sigmoid", name, {x});
      case LayerKind::Tanh: return g_.node("Tanh", name, {x});
      case LayerKind::Dropout: return x;  // the identity in eval
      case LayerKind::ChannelNoise:  // eval: the noise's mean scale
        return g_.node("Mul", name, {x, g_.float_constant(name + "/mean_scale",
                                                           static_cast<float>((1 + std::stod(setting(l, "scale", "1.5"))) / 2))});
      case LayerKind::Flatten:
        shape = {numel(shape)};
        return g_.node("Flatten", name, {x}, {int_attr("axis", 1)});
      case LayerKind::LogSoftmax: return g_.node("LogSoftmax", name, {x}, {int_attr("axis", 1)});
      case LayerKind::MaxPool2d: {
        const int64_t k = int_setting(l, "kernel_size", 2), s = int_setting(l, "stride", k);
        const int64_t p = int_setting(l, "padding", 0);
        shape = {shape[0], window_out(shape[1], k, s, p), window_out(shape[2], k, s, p)};
        return g_.node("MaxPool", name, {x},
                       {ints_attr("kernel_shape", {k, k}), ints_attr("strides", {s, s}), ints_attr("pads", {p, p, p, p})});
      }
      case LayerKind::AvgPool2d: {
        const int64_t k = int_setting(l, "kernel_size", 2), s = int_setting(l, "stride", k);
        const int64_t p = int_setting(l, "padding", 0);
        shape = {shape[0], window_out(shape[1], k, s, p), window_out(shape[2], k, s, p)};
        return g_.node("AveragePool", name, {x},
                       {ints_attr("kernel_shape", {k, k}), ints_attr("strides", {s, s}), ints_attr("pads", {p, p, p, p}),
                        int_attr("count_include_pad", 1)});
      }
      case LayerKind::GlobalAvgPool:
        shape = {shape[0], 1, 1};
        return g_.node("GlobalAveragePool", name, {x});
      case LayerKind::Scale: return g_.node("Mul", name, {x, tensor(name + ".weight")});
      case LayerKind::Bias: return g_.node("Add", name, {x, tensor(name + ".bias")});
      case LayerKind::Residual: return residual(l, name, x, shape);

    }
    fail("onnx export", label, "has no ONNX form");
  }

  // y = f(x) + skip(x) (Residual): the body's value, the skip path's, their sum.
  std::string residual(const Layer& l, const std::string& name, const std::string& x, Shape& shape) {
    const std::span<const NamedLayer> children = l.children();
    const size_t split = l.shortcut_begin();
    const Shape in = shape;
    const std::string body = level(children.first(split), name + ".", x, shape);
    std::string skip = x;
    if (split < children.size()) {
      Shape skip_shape = in;
      skip = level(children.subspan(split), name + ".", x, skip_shape);
    } else if (setting(l, "shortcut", "identity") == "pad") {
      const int64_t stride = (in[1] + shape[1] - 1) / shape[1], out_channels = shape[0], in_channels = in[0];
      std::vector<float> copy(static_cast<size_t>(out_channels * in_channels), 0.0f);
      for (int64_t c = 0; c < in_channels; ++c) copy[static_cast<size_t>(c * in_channels + c)] = 1.0f;
      skip = g_.node("Conv", name + "/skip", {x, g_.float_tensor(name + ".onnx_skip", {out_channels, in_channels, 1, 1}, copy.data())},
                     {ints_attr("kernel_shape", {1, 1}), ints_attr("strides", {stride, stride})});
    }
    return g_.node("Add", name, {skip, body});
  }

  // Eval-mode normalization with running statistics: BatchNormalization (scale 1, bias 0 when
  // the layer has no affine).
  std::string running_norm(const Layer& l, const std::string& name, const std::string& x, const Shape& shape,
                           double eps) {
    const int64_t channels = shape[0];
    std::string scale, bias;
    if (declares(l, "weight")) {
      scale = tensor(name + ".weight");
      bias = tensor(name + ".bias");
    } else {
      const std::vector<float> ones(channels, 1.0f), zeros(channels, 0.0f);
      scale = g_.float_tensor(name + ".onnx_scale", {channels}, ones.data());
      bias = g_.float_tensor(name + ".onnx_bias", {channels}, zeros.data());
    }
    return g_.node("BatchNormalization", name,
                   {x, scale, bias, tensor(name + ".running_mean"), tensor(name + ".running_var")},
                   {float_attr("epsilon", static_cast<float>(eps))});
  }

  // Statistics of each sample over `groups` groups of its values (the sample's channels in
  // order): GroupNorm, InstanceNorm (groups = C) and LayerNorm (one group, its affine over the
  // whole sample rather than per channel). The sample as (groups, -1) through
  // InstanceNormalization with scale 1 and bias 0 normalizes each group, as PyTorch 1.13 exports
  // GroupNorm: OpenCV 4.6 has neither GroupNormalization nor LayerNormalization, and its
  // importer cannot broadcast the ReduceMean, Sub, Div chain between computed tensors.
  std::string sample_norm(const Layer& l, const std::string& name, const std::string& x, const Shape& shape,
                          int64_t groups, bool elementwise_affine) {
    const std::vector<float> ones(groups, 1.0f), zeros(groups, 0.0f);
    const std::string grouped = g_.node("Reshape", name + "/grouped", {x, g_.int64_constant(name + "/group_shape", {0, groups, -1})});
    const std::string normalized = g_.node(
        "InstanceNormalization", name + "/normalized",
        {grouped, g_.float_tensor(name + "/group_scale", {groups}, ones.data()),
         g_.float_tensor(name + "/group_bias", {groups}, zeros.data())},
        {float_attr("epsilon", static_cast<float>(eps_setting(l)))});
    std::vector<int64_t> back = {0};
    back.insert(back.end(), shape.begin(), shape.end());
    std::string y = g_.node("Reshape", declares(l, "weight") ? name + "/ungrouped" : name,
                            {normalized, g_.int64_constant(name + "/shape", back)});
    if (!declares(l, "weight")) return y;
    std::string weight = tensor(name + ".weight"), bias = tensor(name + ".bias");
    if (!elementwise_affine && shape.size() > 1) {
      // (C) -> (C, 1, ...): broadcast per channel over the spatial axes.
      std::vector<int64_t> per_channel(shape.size(), 1);
      per_channel[0] = shape[0];
      const std::string s = g_.int64_constant(name + "/affine_shape", per_channel);
      weight = g_.node("Reshape", name + "/weight", {weight, s});
      bias = g_.node("Reshape", name + "/bias", {bias, s});
    }
    return g_.node("Add", name, {g_.node("Mul", name + "/scaled", {y, weight}), bias});
  }
};

// The shortest text that reads back to the same float: 0.1307, not 0.130700.
std::string shortest(float v) {
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, v);
  return ec == std::errc() ? std::string(text, end) : std::to_string(v);
}

std::string normalization_text(const InputNormalization& n) {
  switch (n.scale) {
    case InputScale::Raw: return "pixel * 255, pixel on [0, 1]";
    case InputScale::Unit: return "pixel as it is, on [0, 1]";
    case InputScale::Standardize: break;
  }
  return "(pixel - " + shortest(n.mean) + ") / " + shortest(n.std) + ", pixel on [0, 1]";
}

}  // namespace

std::string onnx_model(Network& net, const OnnxExportOptions& options) {
  onnx::ModelProto model;
  model.set_ir_version(7);  // the IR of opset 13
  model.set_producer_name("bnlab");
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(options.model_name);
  const std::string norm = normalization_text(options.normalization);
  model.set_doc_string(options.with_preprocessing
                           ? "input: raw pixels on [0, 1]; the graph normalizes them as " + norm
                           : "input: normalized pixels, " + norm + " (export --with-preprocessing puts this in the graph)");
  onnx::StringStringEntryProto* meta = model.add_metadata_props();
  meta->set_key("bnlab.input_normalization");
  meta->set_value(options.with_preprocessing ? "in the graph" : norm);

  GraphBuilder g(*graph);
  g.input("input", net.input_shape());
  std::string x = "input";
  if (options.with_preprocessing && options.normalization.scale == InputScale::Standardize) {
    x = g.node("Sub", "preprocess/centered", {x, g.float_constant("preprocess.mean", options.normalization.mean)});
    x = g.node("Div", "preprocess/normalized", {x, g.float_constant("preprocess.std", options.normalization.std)});
  } else if (options.with_preprocessing && options.normalization.scale == InputScale::Raw) {
    x = g.node("Mul", "preprocess/scaled", {x, g.float_constant("preprocess.scale", 255.0f)});
  }
  Shape shape = net.input_shape();
  x = Exporter(g, net).level(net.layers(), "", x, shape);
  if (shape != net.output_shape()) {
    fail("onnx export", "output", "the graph's shape " + to_string(shape) + " is not the network's " +
                                      to_string(net.output_shape()));
  }
  if (x == "input") fail("onnx export", "network", "has no layer that computes anything");
  // The last node's value becomes the graph's output "output".
  for (onnx::NodeProto& n : *graph->mutable_node()) {
    for (std::string& out : *n.mutable_output()) {
      if (out == x) out = "output";
    }
    for (std::string& in : *n.mutable_input()) {
      if (in == x) in = "output";
    }
  }
  g.output("output", shape);
  return model.SerializeAsString();
}

void export_onnx(Network& net, const std::string& path, const OnnxExportOptions& options) {
  const std::string bytes = onnx_model(net, options);
  write_file_atomically(path, [&](const ByteSink& sink) {
    sink({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  });
}

}  // namespace bnlab
