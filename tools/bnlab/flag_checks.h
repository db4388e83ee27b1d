// The ranges of bnlab's flags, in one place, as CLI11 validators whose messages a person reads:
// `--threads: 5000 is out of range: 0 (all cores) to 1024`. Numbers that reach an allocation are
// bounded here (threads, counts) or against the network they size (batch_fits).
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "bnlab/checkpoint.h"
#include "bnlab/input_scale.h"
#include "bnlab/network.h"

namespace bnlab::cli {

constexpr int64_t kMaxThreads = 1024;           // OpenMP teams and per-thread scratch
constexpr int64_t kMaxCount = 1'000'000'000'000;  // steps, epochs, intervals: beyond any run
constexpr double kMaxReal = 3.4e38;             // learning rates, decays: they become floats
inline const std::string kMaxRealWords = "3.4e38 (the largest float)";

// An integer in [lo, hi]; `words` says the range as the message shows it ("1 to 1024").
CLI::Validator integer_in(int64_t lo, int64_t hi, const std::string& words);
// A finite real in [lo, hi] (NaN and infinities refused), with `words` as above.
CLI::Validator real_in(double lo, double hi, const std::string& words);
CLI::Validator threads_range();  // 0 (all cores) to kMaxThreads

// Throws an Error naming `flag` unless a batch of `batch` samples fits the buffers `net` would
// reserve for it (each layer's output at most kMaxValues values); `inference`: the eval path.
void check_batch_fits(const Network& net, int64_t batch, const std::string& flag, bool inference);

// --input-scale: raw, unit or standardize.
CLI::Validator input_scale_names();
// The input scaling the checkpoint `weights` (its metadata `meta`) was trained with, and which an
// --input-scale given (`flag`) must repeat: eval, predict, recalibrate and export use no other.
// (An empty flag: not given.)
InputScale trained_input_scale(const Metadata& meta, const std::string& weights, const std::string& flag);

}  // namespace bnlab::cli
