// bnlab export: a trained model rewritten for inference, batch norm optionally folded into the
// layer before: as safetensors with its spec, or as an ONNX model (src/io/onnx_export.h).
#include <cstdio>
#include <fstream>
#include <memory>

#include "bnlab/atomic_file.h"
#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/fold.h"
#include "bnlab/spec.h"
#include "bnlab/data.h"
#include "commands.h"
#include "flag_checks.h"
#ifdef BNLAB_HAVE_ONNX
#include "io/onnx_export.h"
#endif

namespace bnlab::cli {
namespace {

struct ExportFlags {
  std::string model = "seed";
  std::string weights;
  std::string out;
  std::string spec_out;
  bool fold_bn = false;
  std::string input = "1x28x28";
  std::string format = "safetensors";
  bool with_preprocessing = false;
  std::string data = "mnist";
};

Shape parse_shape(const std::string& text) {
  Shape shape;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t x = std::min(text.find('x', pos), text.size());
    const std::string part = text.substr(pos, x - pos);
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v <= 0) fail("--input", "", "'" + text + "' is not a shape like 1x28x28");
    shape.push_back(v);
    pos = x + 1;
  }
  return shape;
}

// The network (BN folded with --fold-bn) as an ONNX model at f.out.
void write_onnx(Network& net, const ExportFlags& f, InputScale scale) {
#ifdef BNLAB_HAVE_ONNX
  const PixelStats stats = pixel_stats(f.data);
  OnnxExportOptions options{.with_preprocessing = f.with_preprocessing,
                            .normalization = {.scale = scale, .mean = stats.mean, .std = stats.std},
                            .model_name = f.model};
  int folded = 0;
  if (f.fold_bn) {
    FoldedNetwork fold = fold_batchnorm(net);
    folded = fold.folded;
    export_onnx(fold.net, f.out, options);
  } else {
    export_onnx(net, f.out, options);
  }
  std::printf("exported %s (ONNX opset %d%s; input %s)\n", f.out.c_str(), kOnnxOpset,
              f.fold_bn ? (", " + std::to_string(folded) + " batch norm layers folded").c_str() : "",
              f.with_preprocessing ? "raw pixels on [0, 1]" : "normalized pixels");
#else
  (void)net;
  (void)f;
  (void)scale;
  fail("--format", "onnx", "this bnlab was built without ONNX export (configure with -DBNLAB_ONNX=ON, "
                           "which needs libonnx-dev, libprotobuf-dev and protobuf-compiler)");
#endif
}

void run_export(const ExportFlags& f) {
  if (f.format != "onnx" && f.with_preprocessing) fail("--with-preprocessing", "", "applies to --format onnx only");
  if (f.format == "onnx" && !f.spec_out.empty()) fail("--spec-out", "", "applies to --format safetensors only");
  const NetworkSpec spec = load_spec(f.model);
  const Shape input = parse_shape(f.input);
  Network net = build_network(spec, input);
  const InputScale scale = trained_input_scale(load_checkpoint(net, f.weights), f.weights, "");
  if (f.format == "onnx") return write_onnx(net, f, scale);
  const Metadata meta = {{kInputScaleKey, input_scale_name(scale)}};
  const std::string spec_path = f.spec_out.empty() ? f.out + ".spec" : f.spec_out;
  if (f.fold_bn) {
    FoldedNetwork folded = fold_batchnorm(net);
    Metadata folded_meta = meta;
    folded_meta["bnlab.spec_text"] = folded.text;
    save_checkpoint(folded.net, f.out, folded_meta);
    write_file_atomically(spec_path, [&](const ByteSink& sink) {
      const std::string text = "# " + f.model + " with batch norm folded for inference (bnlab export --fold-bn)\n" + folded.text;
      sink({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    });
    std::printf("folded %d batch norm layers: %s (spec %s)\n", folded.folded, f.out.c_str(), spec_path.c_str());
  } else {
    const std::string text = spec_text(spec);
    Metadata plain_meta = meta;
    plain_meta["bnlab.spec_text"] = text;
    save_checkpoint(net, f.out, plain_meta);
    write_file_atomically(spec_path, [&](const ByteSink& sink) {
      sink({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    });
    std::printf("exported %s (spec %s)\n", f.out.c_str(), spec_path.c_str());
  }
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto flags = std::make_shared<ExportFlags>();
  CLI::App* cmd = app.add_subcommand("export", "Write a trained model for inference (safetensors or ONNX), optionally with BN folded in");
  cmd->add_option("--model", flags->model, "Preset or spec file the weights belong to")->capture_default_str();
  cmd->add_option("--weights", flags->weights, "The trained model (safetensors)")->required();
  cmd->add_option("--out", flags->out, "Output file (safetensors, or .onnx)")->required();
  cmd->add_option("--format", flags->format,
                  "safetensors (weights + a spec file) or onnx (a model for OpenCV, ONNX Runtime, ...)")
      ->capture_default_str()->check(CLI::IsMember({"safetensors", "onnx"}));
  cmd->add_option("--spec-out", flags->spec_out, "Output spec file (default: OUT.spec; safetensors only)");
  cmd->add_flag("--with-preprocessing", flags->with_preprocessing,
                "onnx: the graph normalizes raw pixels on [0, 1] itself ((x - mean) / std of --data)");
  cmd->add_option("--data", flags->data, "The data set whose normalization the model was trained with: mnist, fashion-mnist or a directory")
      ->capture_default_str();
  cmd->add_flag("--fold-bn", flags->fold_bn, "Fold each BatchNorm into the Conv2d or Linear before it");
  cmd->add_option("--input", flags->input, "Input shape per sample")->capture_default_str();
  cmd->callback([flags] { run_export(*flags); });
}

}  // namespace bnlab::cli
