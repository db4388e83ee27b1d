// Single-class batches: every batch one class, shares by class size, deterministic per
// (seed, epoch), each sample at most once unless its class must wrap around.
#include "experiments/batch_order.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace bnlab::experiments {
namespace {

Dataset labelled(const std::vector<uint8_t>& labels) {
  Dataset d;
  d.count = static_cast<int64_t>(labels.size());
  d.labels = labels;
  return d;
}

TEST(SingleClassBatches, EveryBatchHoldsOneClassInItsShare) {
  std::vector<uint8_t> labels;
  for (int i = 0; i < 600; ++i) labels.push_back(static_cast<uint8_t>(i < 300 ? 0 : i < 480 ? 1 : 2));  // 300, 180, 120
  const Dataset set = labelled(labels);
  std::vector<int64_t> order;
  single_class_batches(order, set, 3, 30, 7, 0);
  ASSERT_EQ(order.size(), 600u);  // 20 batches of 30 use every sample
  std::map<int, int> batches_of;
  for (size_t b = 0; b < 20; ++b) {
    const int c = labels[static_cast<size_t>(order[b * 30])];
    for (size_t i = 0; i < 30; ++i) EXPECT_EQ(labels[static_cast<size_t>(order[b * 30 + i])], c) << "batch " << b;
    ++batches_of[c];
  }
  EXPECT_EQ(batches_of[0], 10);
  EXPECT_EQ(batches_of[1], 6);
  EXPECT_EQ(batches_of[2], 4);
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 600u) << "a sample twice though no class wraps";
  // Not all of class 0 first: the batches' order is shuffled.
  bool mixed = false;
  for (size_t b = 0; b < 10; ++b) mixed |= labels[static_cast<size_t>(order[b * 30])] != 0;
  EXPECT_TRUE(mixed);
}

TEST(SingleClassBatches, DeterministicPerSeedAndEpoch) {
  std::vector<uint8_t> labels;
  for (int i = 0; i < 257; ++i) labels.push_back(static_cast<uint8_t>((i * 7) % 10));
  const Dataset set = labelled(labels);
  std::vector<int64_t> a, b, c;
  single_class_batches(a, set, 10, 16, 1, 3);
  single_class_batches(b, set, 10, 16, 1, 3);
  single_class_batches(c, set, 10, 16, 1, 4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SingleClassBatches, SmallClassesWrapAroundAndLabelsAreChecked) {
  // 10 samples per class, batches of 16: every batch repeats some of its class.
  std::vector<uint8_t> labels;
  for (int i = 0; i < 40; ++i) labels.push_back(static_cast<uint8_t>(i % 4));
  const Dataset set = labelled(labels);
  std::vector<int64_t> order;
  single_class_batches(order, set, 4, 16, 2, 0);
  ASSERT_EQ(order.size(), 40u);
  for (size_t b = 0; b < 2; ++b)
    for (size_t i = 0; i < 16; ++i) EXPECT_EQ(labels[static_cast<size_t>(order[b * 16 + i])], labels[static_cast<size_t>(order[b * 16])]);
  EXPECT_THROW(single_class_batches(order, set, 3, 16, 2, 0), std::exception);  // label 3 >= 3 classes
  EXPECT_THROW(single_class_batches(order, set, 4, 41, 2, 0), std::exception);  // batch larger than the set
}

}  // namespace
}  // namespace bnlab::experiments
