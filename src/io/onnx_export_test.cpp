// The ONNX graph's structure: what each layer becomes, the names, the errors. The numbers are
// checked in the engines themselves (tests/onnx/: OpenCV, ONNX Runtime, onnx.checker, PyTorch).
#include "io/onnx_export.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "bnlab/error.h"
#include "bnlab/fold.h"
#include "bnlab/spec.h"
#include "onnx/onnx.pb.h"

namespace bnlab {
namespace {

onnx::ModelProto exported(Network& net, const OnnxExportOptions& options = {}) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(onnx_model(net, options)));
  return model;
}

std::vector<std::string> ops(const onnx::ModelProto& model) {
  std::vector<std::string> v;
  for (const onnx::NodeProto& n : model.graph().node()) v.push_back(n.op_type());
  return v;
}

int64_t count(const std::vector<std::string>& v, const std::string& op) { return std::count(v.begin(), v.end(), op); }

TEST(OnnxExport, SeedIsTheTutorialsGraphUnderStateDictNames) {
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  net.initialize(1);
  const onnx::ModelProto model = exported(net, {.normalization = {.mean = 0.1307f, .std = 0.3081f}});
  EXPECT_EQ(ops(model), (std::vector<std::string>{"Conv", "BatchNormalization", "Relu", "Conv", "BatchNormalization",
                                                  "Relu", "MaxPool", "Flatten", "Gemm", "BatchNormalization", "Relu",
                                                  "Gemm", "LogSoftmax"}));
  ASSERT_EQ(model.opset_import_size(), 1);
  EXPECT_EQ(model.opset_import(0).version(), kOnnxOpset);
  EXPECT_LE(kOnnxOpset, 17);
  // The batch dimension is a name, the rest are sizes.
  const auto& in = model.graph().input(0).type().tensor_type().shape();
  ASSERT_EQ(in.dim_size(), 4);
  EXPECT_EQ(in.dim(0).dim_param(), "N");
  EXPECT_EQ(in.dim(2).dim_value(), 28);
  EXPECT_EQ(model.graph().output(0).name(), "output");
  EXPECT_EQ(model.graph().output(0).type().tensor_type().shape().dim(1).dim_value(), 10);
  // Every float tensor of the checkpoint, under its key (num_batches_tracked is not needed).
  std::set<std::string> initializers, keys;
  for (const onnx::TensorProto& t : model.graph().initializer()) initializers.insert(t.name());
  for (const TensorView& t : net.state_dict()) if (t.dtype == DType::F32) keys.insert(t.name);
  EXPECT_EQ(initializers, keys);
  EXPECT_NE(model.doc_string().find("input: normalized pixels, (pixel - 0.1307) / 0.3081, pixel on [0, 1]"), std::string::npos) << model.doc_string();
}

TEST(OnnxExport, PreprocessingPutsTheNormalizationFirst) {
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  net.initialize(1);
  const onnx::ModelProto model = exported(net, {.with_preprocessing = true, .normalization = {.mean = 0.1307f, .std = 0.3081f}});
  const std::vector<std::string> v = ops(model);
  ASSERT_GE(v.size(), 3u);
  EXPECT_EQ(v[0], "Sub");
  EXPECT_EQ(v[1], "Div");
  EXPECT_EQ(model.graph().node(0).input(0), "input");
  EXPECT_EQ(model.graph().node(2).input(0), model.graph().node(1).output(0));
}

// Raw pixels: the graph takes pixels on [0, 1] and multiplies by 255; unit: nothing to add.
TEST(OnnxExport, PreprocessingFollowsTheInputScale) {
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  net.initialize(1);
  const onnx::ModelProto raw = exported(net, {.with_preprocessing = true, .normalization = {.scale = InputScale::Raw}});
  ASSERT_GE(ops(raw).size(), 2u);
  EXPECT_EQ(ops(raw)[0], "Mul");
  EXPECT_EQ(ops(raw)[1], "Conv");
  EXPECT_NE(raw.doc_string().find("pixel * 255"), std::string::npos) << raw.doc_string();
  const onnx::ModelProto unit = exported(net, {.with_preprocessing = true, .normalization = {.scale = InputScale::Unit}});
  EXPECT_EQ(ops(unit)[0], "Conv");
  const onnx::ModelProto plain = exported(net, {.normalization = {.scale = InputScale::Raw}});
  EXPECT_EQ(ops(plain)[0], "Conv");
  EXPECT_NE(plain.doc_string().find("input: normalized pixels, pixel * 255"), std::string::npos) << plain.doc_string();
}

// Folded, the BN after a Conv2d or Linear is gone; a BN after a ReLU stays a BatchNormalization.
TEST(OnnxExport, FoldKeepsOnlyTheBatchNormAfterReLU) {
  Network seed = build_network(load_spec("seed"), {1, 28, 28});
  seed.initialize(1);
  FoldedNetwork folded_seed = fold_batchnorm(seed);
  EXPECT_EQ(count(ops(exported(folded_seed.net)), "BatchNormalization"), 0);
  Network after = build_network(load_spec("seed-bn-after-relu"), {1, 28, 28});
  after.initialize(1);
  FoldedNetwork folded_after = fold_batchnorm(after);
  EXPECT_EQ(count(ops(exported(folded_after.net)), "BatchNormalization"), 3);
}

TEST(OnnxExport, EveryPresetExportsWithoutDropout) {
  for (const std::string& name : preset_names()) {
    Network net = build_network(load_spec(name), {1, 28, 28});
    net.initialize(2);
    const std::vector<std::string> v = ops(exported(net));
    EXPECT_EQ(count(v, "Dropout"), 0) << name;
    EXPECT_EQ(v.back(), "LogSoftmax") << name;
    EXPECT_EQ(count(v, "GroupNormalization") + count(v, "LayerNormalization"), 0) << name;
  }
}

// GroupNorm and LayerNorm have no fused operator: InstanceNormalization over the sample's groups;
// the residual block is an Add of its input.
TEST(OnnxExport, NormsArePrimitiveOpsAndResidualIsAnAdd) {
  Network gn = build_network(load_spec("seed-groupnorm"), {1, 28, 28});
  gn.initialize(3);
  const std::vector<std::string> v = ops(exported(gn));
  EXPECT_EQ(count(v, "InstanceNormalization"), 3);
  EXPECT_EQ(count(v, "Reshape"), 3 * 2 + 2 * 2);  // in and out of the groups; the conv GroupNorms' affine
  Network res = build_network(parse_spec("c: Conv2d out_channels=2 kernel_size=3 padding=1\nb: Residual\n"
                                         "  x: Conv2d out_channels=2 kernel_size=3 padding=1\n  BatchNorm2d\n"
                                         "  ReLU\nend\nFlatten\nfc: Linear out_features=3\nLogSoftmax\n", "res.spec"),
                              {1, 6, 6});
  res.initialize(4);
  const onnx::ModelProto model = exported(res);
  const std::vector<std::string> r = ops(model);
  ASSERT_EQ(count(r, "Add"), 1);
  const onnx::NodeProto& add = model.graph().node(static_cast<int>(std::find(r.begin(), r.end(), "Add") - r.begin()));
  EXPECT_EQ(add.input(0), model.graph().node(0).output(0));  // x + f(x), x the stem's output
  std::set<std::string> initializers;
  for (const onnx::TensorProto& t : model.graph().initializer()) initializers.insert(t.name());
  EXPECT_TRUE(initializers.count("b.x.weight") && initializers.count("b.1.running_var"));
}

TEST(OnnxExport, BatchNormWithoutRunningStatisticsIsAnErrorNamingTheLayer) {
  Network net = build_network(parse_spec("c: Conv2d out_channels=2 kernel_size=3\nbn: BatchNorm2d track_running_stats=false\n"
                                         "Flatten\nfc: Linear out_features=3\nLogSoftmax\n", "batch.spec"),
                              {1, 6, 6});
  net.initialize(5);
  try {
    onnx_model(net, {});
    FAIL() << "exported";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "onnx export: layer bn (BatchNorm2d): track_running_stats=false normalizes each batch with "
                           "its own statistics, also in eval; an exported model needs running statistics");
  }
}

}  // namespace
}  // namespace bnlab
