// Summary statistics against values numpy gives for the same inputs.
#include "experiments/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace bnlab::experiments {
namespace {

TEST(ExperimentStats, MeanAndSampleStddev) {
  EXPECT_DOUBLE_EQ(mean({1, 2, 3, 4}), 2.5);
  EXPECT_NEAR(stddev({1, 2, 3, 4}), 1.2909944487358056, 1e-15);  // np.std(ddof=1)
  EXPECT_EQ(stddev({5}), 0.0);
  EXPECT_TRUE(std::isnan(mean({})));
}

TEST(ExperimentStats, PercentilesInterpolateAsNumpy) {
  const std::vector<double> v = {7, 1, 3, 9, 5};  // sorted 1 3 5 7 9
  EXPECT_DOUBLE_EQ(percentile(v, 50), 5);
  EXPECT_DOUBLE_EQ(percentile(v, 15), 2.2);   // np.percentile(v, 15)
  EXPECT_DOUBLE_EQ(percentile(v, 85), 7.8);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 9);
  EXPECT_DOUBLE_EQ(percentile({4}, 85), 4);
}

TEST(ExperimentStats, MomentsOfFloatsInDouble) {
  const float x[4] = {1e4f + 1, 1e4f - 1, 1e4f + 1, 1e4f - 1};
  const Moments m = moments(x, 4);
  EXPECT_DOUBLE_EQ(m.mean, 1e4);
  EXPECT_DOUBLE_EQ(m.std, 1.0);
}

}  // namespace
}  // namespace bnlab::experiments
