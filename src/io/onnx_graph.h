// A thin builder over the ONNX graph message (onnx::GraphProto, generated at build time from the
// schema Debian's libonnx-dev installs, /usr/include/onnx/onnx.proto): nodes with fresh output
// names, float and int64 initializers, attributes. The exporter (onnx_export.cpp) says what to
// build; this file only says how a node or a tensor is written.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "bnlab/tensor.h"
#include "onnx/onnx.pb.h"

namespace bnlab::onnx_export {

// One attribute of a node: an integer, a float or a list of integers.
struct Attribute {
  std::string name;
  enum class Type { Int, Float, Ints } type;
  int64_t i = 0;
  float f = 0;
  std::vector<int64_t> ints;
};
inline Attribute int_attr(std::string name, int64_t v) { return {std::move(name), Attribute::Type::Int, v, 0, {}}; }
inline Attribute float_attr(std::string name, float v) { return {std::move(name), Attribute::Type::Float, 0, v, {}}; }
inline Attribute ints_attr(std::string name, std::vector<int64_t> v) {
  return {std::move(name), Attribute::Type::Ints, 0, 0, std::move(v)};
}

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto& graph) : graph_(graph) {}

  // Adds `op` reading `inputs`; its one output is a fresh value named after `name`. Returns it.
  std::string node(std::string_view op, const std::string& name, const std::vector<std::string>& inputs,
                   const std::vector<Attribute>& attributes = {});

  // Initializers: a float tensor under `name` (a state_dict key, or a constant of the graph's
  // own), and int64 constants (shapes for Reshape) under a fresh name. Return the name.
  std::string float_tensor(const std::string& name, const Shape& dims, const float* data);
  std::string float_constant(const std::string& name, float value);
  std::string int64_constant(const std::string& name, const std::vector<int64_t>& values);

  // Declares a graph input or output of float32 (batch, dims...), the batch dimension named.
  void input(const std::string& name, const Shape& per_sample);
  void output(const std::string& name, const Shape& per_sample);

  // The value named `name` from here on: `name` if unused, else `name_2`, `name_3`, ...
  std::string fresh(const std::string& name);

 private:
  onnx::GraphProto& graph_;
  std::vector<std::string> used_;
};

}  // namespace bnlab::onnx_export
