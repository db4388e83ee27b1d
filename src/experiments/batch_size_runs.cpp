#include "experiments/batch_size_runs.h"

#include <algorithm>

#include "bnlab/error.h"
#include "experiments/nets.h"

namespace bnlab::experiments {
namespace {

// `settings` appended to every BatchNorm1d/BatchNorm2d line of `text`.
std::string with_batchnorm_settings(std::string text, const std::string& settings) {
  for (const std::string type : {"BatchNorm2d", "BatchNorm1d"}) {
    for (size_t at = text.find(type); at != std::string::npos; at = text.find(type, at + 1))
      text.insert(at + type.size(), " " + settings);
  }
  return text;
}

}  // namespace

const char* mode_name(BatchMode mode) { return mode == BatchMode::Same ? "same" : "ghost"; }

const std::vector<std::string>& batch_size_norms() {
  static const std::vector<std::string> norms = {"bn", "gn", "ln", "renorm"};
  return norms;
}

std::vector<SizeRun> batch_size_runs(const std::vector<int64_t>& sizes, int64_t images, double base_lr) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t b = sizes[i];
    if (b < 2 || kGhostOptimizerBatch % b != 0)
      fail("experiment", "--sizes", std::to_string(b) + " is not a divisor of " + std::to_string(kGhostOptimizerBatch) +
                                        " of at least 2 (the ghost batches split batches of " +
                                        std::to_string(kGhostOptimizerBatch) + ")");
    if (std::find(sizes.begin(), sizes.begin() + static_cast<std::ptrdiff_t>(i), b) != sizes.begin() + static_cast<std::ptrdiff_t>(i))
      fail("experiment", "--sizes", std::to_string(b) + " is given twice");
  }
  if (images <= 0 || images % kGhostOptimizerBatch != 0)
    fail("experiment", "images", std::to_string(images) + " is not a positive multiple of " + std::to_string(kGhostOptimizerBatch));
  auto run = [&](const std::string& norm, BatchMode mode, int64_t b) {
    const int64_t opt = mode == BatchMode::Same ? b : kGhostOptimizerBatch;
    return SizeRun{norm, mode, b, opt, images / opt, base_lr * static_cast<double>(opt) / static_cast<double>(kGhostOptimizerBatch)};
  };
  std::vector<SizeRun> runs;
  for (const std::string& norm : batch_size_norms())
    for (int64_t b : sizes) runs.push_back(run(norm, BatchMode::Same, b));
  for (int64_t b : sizes)
    if (b < kGhostOptimizerBatch) runs.push_back(run("bn", BatchMode::Ghost, b));
  return runs;
}

std::string batch_size_net(const SizeRun& run) {
  if (run.norm == "gn") return model_text("seed-groupnorm");
  if (run.norm == "ln") return model_text("seed-layernorm");
  const std::string seed = model_text("seed");
  if (run.norm == "renorm") {
    if (run.mode == BatchMode::Ghost) fail("experiment", "batch-size", "renorm with ghost batches is not supported");
    return with_batchnorm_settings(seed, "renorm=true r_max=3 d_max=5 renorm_warmup=" + std::to_string(run.steps / 8) +
                                             " renorm_ramp=" + std::to_string(run.steps / 4));
  }
  if (run.norm != "bn") fail("experiment", "batch-size", "unknown normalizer '" + run.norm + "'");
  return run.mode == BatchMode::Ghost ? with_batchnorm_settings(seed, "virtual_batch=" + std::to_string(run.norm_batch)) : seed;
}

std::string batch_size_key(const SizeRun& run, int64_t seed) {
  return run.norm + "/" + mode_name(run.mode) + "/" + std::to_string(run.norm_batch) + "/s" + std::to_string(seed);
}

}  // namespace bnlab::experiments
