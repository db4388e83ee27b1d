// bnlab predict: classify the user's own digit images (PNG or PGM) with a trained model. Each
// image goes through MNIST's preprocessing (bnlab/image.h: center_digit), then the network in
// eval mode; probabilities are the softmax of its output (exp of LogSoftmax's).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/image.h"
#include "bnlab/loss.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "commands.h"
#include "flag_checks.h"

namespace bnlab::cli {
namespace {

constexpr int64_t kBatch = 256;  // images per forward pass

struct PredictFlags {
  std::string model = "seed";
  std::string weights;
  std::string input_scale;
  bool json = false;
  bool show = false;
  int64_t top = 3;
  int threads = 0;
  std::vector<std::string> images;
};

// softmax of one row: exp(logp) when the network ends in LogSoftmax, and right for raw scores too.
std::vector<double> probabilities(const float* scores, int64_t classes) {
  const double peak = *std::max_element(scores, scores + classes);
  std::vector<double> p(static_cast<size_t>(classes));
  double sum = 0;
  for (int64_t c = 0; c < classes; ++c) sum += p[static_cast<size_t>(c)] = std::exp(scores[c] - peak);
  for (double& v : p) v /= sum;
  return p;
}

// The 28x28 input as text, darkest to brightest " .:-=+*#%@".
void show(const GrayImage& digit) {
  static constexpr char kRamp[] = " .:-=+*#%@";
  for (int64_t y = 0; y < digit.height; ++y) {
    std::string line;
    for (int64_t x = 0; x < digit.width; ++x) {
      const char c = kRamp[digit.pixels[static_cast<size_t>(y * digit.width + x)] * 9 / 255];
      line += c;
      line += c;  // terminal cells are about twice as tall as wide
    }
    std::printf("  |%s|\n", line.c_str());
  }
}

void run_predict(const PredictFlags& f) {
  set_threads(f.threads);
  DigitOptions options;
  Network net = build_network(load_spec(f.model), {1, options.size, options.size});
  options.input.scale = trained_input_scale(load_checkpoint(net, f.weights), f.weights, f.input_scale);
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = options.size * options.size;

  // Every image is read first: a bad one stops the command before anything is printed.
  std::vector<Digit> digits;
  for (const std::string& path : f.images) {
    digits.push_back(center_digit(read_image(path), options));
    if (digits.back().blank) fail(path, "image", "no ink found (the image is blank)");
  }

  const int64_t n = static_cast<int64_t>(digits.size());
  const int64_t batch = std::min(n, kBatch);
  require_log_probabilities(net);  // the probabilities shown are exp(output)
  net.reserve_inference(batch);
  std::vector<float> x(static_cast<size_t>(batch * pixels));
  std::vector<float> scores(static_cast<size_t>(n * classes));
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t m = std::min(batch, n - start);
    for (int64_t i = 0; i < m; ++i) normalize_digit(&x[static_cast<size_t>(i * pixels)], digits[static_cast<size_t>(start + i)].image, options);
    const float* y = net.forward(x.data(), m, {.mode = Mode::Eval});
    std::copy(y, y + m * classes, scores.begin() + start * classes);
  }

  const int64_t k = std::min(f.top, classes);
  nlohmann::json predictions = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<double> p = probabilities(&scores[static_cast<size_t>(i * classes)], classes);
    std::vector<int64_t> order(static_cast<size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    // Highest first; ties keep the lower class first, as argmax.
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
    const std::string& file = f.images[static_cast<size_t>(i)];
    if (f.json) {
      nlohmann::json top = nlohmann::json::array();
      for (int64_t j = 0; j < k; ++j) top.push_back({{"class", order[j]}, {"probability", p[static_cast<size_t>(order[j])]}});
      predictions.push_back({{"file", file}, {"class", order[0]}, {"probability", p[static_cast<size_t>(order[0])]},
                             {"top", top}, {"inverted", digits[static_cast<size_t>(i)].inverted}});
      continue;
    }
    std::string line = file + ": " + std::to_string(order[0]) + "  [";
    for (int64_t j = 0; j < k; ++j) {
      char cell[64];
      std::snprintf(cell, sizeof cell, "%s%lld %.4f", j ? ", " : "", static_cast<long long>(order[j]),
                    p[static_cast<size_t>(order[j])]);
      line += cell;
    }
    std::printf("%s]\n", line.c_str());
    if (f.show) show(digits[static_cast<size_t>(i)].image);
  }
  if (f.json) {
    const nlohmann::json doc = {{"model", f.model}, {"weights", f.weights}, {"predictions", predictions}};
    std::printf("%s\n", doc.dump(2).c_str());
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto flags = std::make_shared<PredictFlags>();
  CLI::App* cmd = app.add_subcommand("predict", "Classify digit images (PNG, PGM) with a trained model");
  cmd->add_option("--model", flags->model, "Preset or spec file the weights belong to")->capture_default_str();
  cmd->add_option("--weights", flags->weights, "safetensors checkpoint (bnlab train --save)")->required();
  cmd->add_option("--input-scale", flags->input_scale,
                  "raw, unit or standardize: must be what the weights were trained with (default: that, from the checkpoint)")
      ->check(input_scale_names());
  CLI::Option* json = cmd->add_flag("--json", flags->json, "Print one JSON document instead of lines");
  cmd->add_option("--top", flags->top, "How many of the most probable classes to list")->capture_default_str()->check(integer_in(1, 1000, "1 to 1000"));
  cmd->add_flag("--show", flags->show, "Also draw each preprocessed 28x28 input as text")->excludes(json);
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(threads_range());
  cmd->add_option("images", flags->images, "PNG or PGM files, any size, dark-on-light or light-on-dark")->required();
  cmd->callback([flags] { run_predict(*flags); });
}

}  // namespace bnlab::cli
