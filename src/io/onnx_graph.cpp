#include "io/onnx_graph.h"

#include <algorithm>

namespace bnlab::onnx_export {
namespace {

constexpr const char* kBatchDim = "N";  // the dynamic batch dimension's name in inputs and outputs

void set_float_value(onnx::ValueInfoProto& v, const std::string& name, const Shape& per_sample) {
  v.set_name(name);
  onnx::TypeProto_Tensor* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param(kBatchDim);
  for (int64_t d : per_sample) t->mutable_shape()->add_dim()->set_dim_value(d);
}

}  // namespace

std::string GraphBuilder::fresh(const std::string& name) {
  std::string candidate = name;
  for (int k = 2; std::find(used_.begin(), used_.end(), candidate) != used_.end(); ++k) {
    candidate = name + "_" + std::to_string(k);
  }
  used_.push_back(candidate);
  return candidate;
}

std::string GraphBuilder::node(std::string_view op, const std::string& name, const std::vector<std::string>& inputs,
                               const std::vector<Attribute>& attributes) {
  onnx::NodeProto* n = graph_.add_node();
  const std::string out = fresh(name);
  n->set_op_type(std::string(op));
  n->set_name(out);
  for (const std::string& in : inputs) n->add_input(in);
  n->add_output(out);
  for (const Attribute& a : attributes) {
    onnx::AttributeProto* p = n->add_attribute();
    p->set_name(a.name);
    switch (a.type) {
      case Attribute::Type::Int: p->set_type(onnx::AttributeProto::INT); p->set_i(a.i); break;
      case Attribute::Type::Float: p->set_type(onnx::AttributeProto::FLOAT); p->set_f(a.f); break;
      case Attribute::Type::Ints:
        p->set_type(onnx::AttributeProto::INTS);
        for (int64_t v : a.ints) p->add_ints(v);
        break;
    }
  }
  return out;
}

std::string GraphBuilder::float_tensor(const std::string& name, const Shape& dims, const float* data) {
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(fresh(name));
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  // raw_data is little-endian float32, as this machine's floats.
  t->set_raw_data(reinterpret_cast<const char*>(data), static_cast<size_t>(numel(dims)) * sizeof(float));
  return t->name();
}

std::string GraphBuilder::float_constant(const std::string& name, float value) {
  return float_tensor(name, {}, &value);
}

std::string GraphBuilder::int64_constant(const std::string& name, const std::vector<int64_t>& values) {
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(fresh(name));
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  return t->name();
}

void GraphBuilder::input(const std::string& name, const Shape& per_sample) {
  used_.push_back(name);
  set_float_value(*graph_.add_input(), name, per_sample);
}

void GraphBuilder::output(const std::string& name, const Shape& per_sample) {
  set_float_value(*graph_.add_output(), name, per_sample);
}

}  // namespace bnlab::onnx_export
