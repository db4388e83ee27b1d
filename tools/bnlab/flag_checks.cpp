#include "flag_checks.h"

#include <charconv>
#include <cmath>

#include "bnlab/error.h"

namespace bnlab::cli {

CLI::Validator integer_in(int64_t lo, int64_t hi, const std::string& words) {
  return CLI::Validator(
      [lo, hi, words](std::string& text) -> std::string {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size()) return "'" + text + "' is not a whole number from " + words;
        if (v < lo || v > hi) return text + " is out of range: " + words;
        return "";
      },
      words);
}

CLI::Validator real_in(double lo, double hi, const std::string& words) {
  return CLI::Validator(
      [lo, hi, words](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v)) return "'" + text + "' is not a finite number from " + words;
        if (v < lo || v > hi) return text + " is out of range: " + words;
        return "";
      },
      words);
}

CLI::Validator threads_range() { return integer_in(0, kMaxThreads, "0 (all cores) to " + std::to_string(kMaxThreads)); }

void check_batch_fits(const Network& net, int64_t batch, const std::string& flag, bool inference) {
  int64_t largest = std::max(numel(net.input_shape()), numel(net.output_shape()));  // the batch's buffers
  if (!inference || !net.eval_is_per_sample()) {
    for (size_t i = 0; i < net.layer_count(); ++i) largest = std::max(largest, numel(net.output_shape(i)));
  }
  const int64_t most = kMaxValues / std::max<int64_t>(largest, 1);
  if (batch > most) {
    fail(flag, "", std::to_string(batch) + " is out of range for this network: 1 to " + std::to_string(most) +
                       " (a layer's output would exceed " + std::to_string(kMaxValues) + " values)");
  }
}

CLI::Validator input_scale_names() {
  return CLI::IsMember({"raw", "unit", "standardize"});
}

InputScale trained_input_scale(const Metadata& meta, const std::string& weights, const std::string& flag) {
  const auto recorded = meta.find(kInputScaleKey);
  return checkpoint_input_scale(recorded == meta.end() ? std::nullopt : std::optional(recorded->second), weights,
                                flag.empty() ? std::nullopt : std::optional(flag));
}

}  // namespace bnlab::cli
