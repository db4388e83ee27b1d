// bnlab summary: the layer table of a network, as torchinfo's summary() or Keras' model.summary()
// print it: name, type, settings, output shape per sample, parameters and multiply-adds, then
// the totals.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/spec.h"
#include "commands.h"

namespace bnlab::cli {
namespace {

struct SummaryFlags {
  std::string model = "seed";
  std::string input = "1x28x28";
};

// "1x28x28" -> {1, 28, 28}: one to three positive sizes.
Shape parse_shape(const std::string& text) {
  Shape shape;
  for (size_t start = 0;;) {
    const size_t x = std::min(text.find('x', start), text.size());
    const char* first = text.data() + start;
    const char* last = text.data() + x;
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(first, last, v);
    if (first == last || ec != std::errc() || end != last || v <= 0 || shape.size() == 3) {
      fail("summary", "--input", "expected CxHxW (or CxL, or C) with positive sizes, got '" + text + "'");
    }
    shape.push_back(v);
    if (x == text.size()) return shape;
    start = x + 1;
  }
}

// 1234567 -> "1,234,567"
std::string grouped(int64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

struct Row {
  std::string name, type, settings, shape, params, macs;
};

void run_summary(const SummaryFlags& f) {
  const Shape input = parse_shape(f.input);
  Network net = build_network(load_spec(f.model), input);

  std::vector<Row> rows = {{"Layer", "Type", "Settings", "Output shape", "Param #", "MACs/image"}};
  int64_t params = 0, macs = 0, activations = 0, saved = 0;
  for (size_t i = 0; i < net.layer_count(); ++i) {
    const Layer& layer = net.layer(i);
    const int64_t p = net.parameter_count(i), m = layer.macs_per_sample();
    params += p;
    macs += m;
    if (!layer.is_view()) activations += numel(net.output_shape(i));  // a view shares its input
    rows.push_back({net.layer_name(i), std::string(layer.type()), layer.describe(), to_string(net.output_shape(i)),
                    grouped(p), grouped(m)});
  }
  for (const TensorView& v : net.state_dict()) saved += numel(v.shape);
  const int64_t buffers = saved - params;  // running statistics and counters

  std::array<size_t, 6> width{};
  for (const Row& r : rows) {
    const std::string* cells[] = {&r.name, &r.type, &r.settings, &r.shape, &r.params, &r.macs};
    for (size_t c = 0; c < 6; ++c) width[c] = std::max(width[c], cells[c]->size());
  }
  size_t total_width = 0;
  for (size_t c : width) total_width += c + 2;
  const std::string rule(total_width - 2, '-');

  std::printf("model %s, input %s per sample\n%s\n", f.model.c_str(), to_string(input).c_str(), rule.c_str());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    // Text columns left-aligned, numbers right-aligned.
    std::printf("%-*s  %-*s  %-*s  %-*s  %*s  %*s\n", static_cast<int>(width[0]), r.name.c_str(),
                static_cast<int>(width[1]), r.type.c_str(), static_cast<int>(width[2]), r.settings.c_str(),
                static_cast<int>(width[3]), r.shape.c_str(), static_cast<int>(width[4]), r.params.c_str(),
                static_cast<int>(width[5]), r.macs.c_str());
    if (i == 0) std::printf("%s\n", rule.c_str());
  }
  std::printf("%s\n", rule.c_str());
  constexpr double kMB = 1e6;
  constexpr double kFloat = sizeof(float);
  std::printf("Trainable params: %s\n", grouped(params).c_str());
  std::printf("Non-trainable values (running statistics, counters): %s\n", grouped(buffers).c_str());
  std::printf("MACs per image: %s (%.2f M)\n", grouped(macs).c_str(), static_cast<double>(macs) / 1e6);
  std::printf("Parameter memory: %.2f MB (float32; the same again for gradients)\n",
              static_cast<double>(params) * kFloat / kMB);
  std::printf("Activation memory per sample: %.2f MB (%s float32 layer outputs, kept for backward)\n",
              static_cast<double>(activations) * kFloat / kMB, grouped(activations).c_str());
}

}  // namespace

void add_summary_command(CLI::App& app) {
  auto flags = std::make_shared<SummaryFlags>();
  CLI::App* cmd = app.add_subcommand("summary", "Print the layer table: output shapes, parameters, multiply-adds");
  cmd->add_option("--model", flags->model, "Preset (seed, seed-nobn, seed-bn-after-relu) or spec file")->capture_default_str();
  cmd->add_option("--input", flags->input, "Input shape per sample, CxHxW")->capture_default_str();
  cmd->callback([flags] { run_summary(*flags); });
}

}  // namespace bnlab::cli
