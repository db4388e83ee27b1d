// bnlab networks as ONNX models (`bnlab export --format onnx`), for the engines users deploy
// with: OpenCV's DNN module and ONNX Runtime check it in the tests (tests/onnx/). The graph is
// the network in eval mode at opset kOnnxOpset: initializers under the checkpoint's state_dict
// keys, a dynamic batch dimension ("N"), input "input" and output "output". docs/guide.md lists
// the ONNX operators each layer becomes and what cannot be exported.
#pragma once

#include <optional>
#include <string>

#include "bnlab/input_scale.h"
#include "bnlab/network.h"

namespace bnlab {

// Opset 13: every operator used here is unchanged from it to 17 (so Debian's ONNX 1.12 checks
// it), and OpenCV 4.6's importer knows each of them.
inline constexpr int kOnnxOpset = 13;

struct OnnxExportOptions {
  // Given: the graph takes pixels on [0, 1] and starts with the scaling the network was trained
  // with (standardize: Sub(mean), Div(std); raw: Mul(255); unit: nothing). Otherwise the input is
  // expected scaled already (the model's doc_string says how, from `normalization`).
  bool with_preprocessing = false;
  InputNormalization normalization;
  std::string model_name = "bnlab";
};

// The network's ONNX model, serialized. Throws Error naming the first layer ONNX cannot express
// (a BatchNorm without running statistics normalizes each batch with its own statistics).
std::string onnx_model(Network& net, const OnnxExportOptions& options);

// onnx_model written to `path` atomically.
void export_onnx(Network& net, const std::string& path, const OnnxExportOptions& options);

}  // namespace bnlab
