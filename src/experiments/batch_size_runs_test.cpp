// The plan of `bnlab experiment batch-size`: the same images at every batch size, the linear
// scaling of the learning rate, ghost runs for BN only, the refused sizes, and networks that build
// with the normalizer and its settings where the run needs them.
#include "experiments/batch_size_runs.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab::experiments {
namespace {

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string error_of(const std::vector<int64_t>& sizes) {
  try {
    batch_size_runs(sizes, 1024, 0.05);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BatchSizeRuns, SeeTheSameImagesAtEverySizeWithLinearlyScaledRates) {
  const std::vector<SizeRun> runs = batch_size_runs({2, 8, 64}, 1024, 0.05);
  ASSERT_EQ(runs.size(), 4u * 3 + 2);  // four normalizers at three sizes; BN's ghost runs at 2 and 8
  for (const SizeRun& r : runs) {
    EXPECT_EQ(r.steps * r.optimizer_batch, 1024) << batch_size_key(r, 1);
    EXPECT_DOUBLE_EQ(r.lr, 0.05 * static_cast<double>(r.optimizer_batch) / 64) << batch_size_key(r, 1);
    if (r.mode == BatchMode::Same) {
      EXPECT_EQ(r.optimizer_batch, r.norm_batch);
    }
  }
  const auto ghosts = std::count_if(runs.begin(), runs.end(), [](const SizeRun& r) { return r.mode == BatchMode::Ghost; });
  EXPECT_EQ(ghosts, 2);
  for (const SizeRun& r : runs) {
    if (r.mode != BatchMode::Ghost) continue;
    EXPECT_EQ(r.norm, "bn");
    EXPECT_EQ(r.optimizer_batch, 64);
    EXPECT_EQ(r.steps, 16);
    EXPECT_LT(r.norm_batch, 64);
  }
  EXPECT_EQ(batch_size_key(runs.back(), 3), "bn/ghost/8/s3");
  EXPECT_EQ(batch_size_key(runs.front(), 1), "bn/same/2/s1");
}

TEST(BatchSizeRuns, RefuseSizesThatDoNotSplitBatchesOf64) {
  for (const std::vector<int64_t>& bad : std::vector<std::vector<int64_t>>{{3}, {1}, {128}, {2, 48}, {8, 8}}) {
    const std::string e = error_of(bad);
    EXPECT_EQ(e.rfind("experiment: --sizes: ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  EXPECT_NE(error_of({8, 8}).find("twice"), std::string::npos);
  EXPECT_EQ(error_of({2, 4, 8, 16, 32, 64}), "");
}

TEST(BatchSizeRuns, NetworksCarryTheirNormalizerAndBuild) {
  const std::vector<SizeRun> runs = batch_size_runs({4, 64}, 4096, 0.05);
  for (const SizeRun& r : runs) {
    const std::string text = batch_size_net(r), key = batch_size_key(r, 1);
    EXPECT_NO_THROW(build_network(parse_spec(text, key), {1, 28, 28})) << key << "\n" << text;
    const bool bn_based = r.norm == "bn" || r.norm == "renorm";
    EXPECT_EQ(count_of(text, "BatchNorm"), bn_based ? 3u : 0u) << key;
    // The layers' names (the presets' comments name their normalizer too).
    EXPECT_EQ(count_of(text, "_gn:"), r.norm == "gn" ? 3u : 0u) << key;
    EXPECT_EQ(count_of(text, "_ln:"), r.norm == "ln" ? 3u : 0u) << key;
    EXPECT_EQ(count_of(text, "virtual_batch=4"), r.mode == BatchMode::Ghost ? 3u : 0u) << key;
    if (r.norm == "renorm") {
      // The schedule in the run's own steps: 1024 steps at batch 4, 64 at batch 64.
      const std::string warmup = "renorm_warmup=" + std::to_string(r.steps / 8) + " renorm_ramp=" + std::to_string(r.steps / 4);
      EXPECT_EQ(count_of(text, warmup), 3u) << key << "\n" << text;
    }
  }
  SizeRun ghost_renorm = runs.front();
  ghost_renorm.norm = "renorm";
  ghost_renorm.mode = BatchMode::Ghost;
  EXPECT_THROW(batch_size_net(ghost_renorm), Error);
}

}  // namespace
}  // namespace bnlab::experiments
