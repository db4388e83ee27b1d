#include "kernels/prefetch.h"

#include <gtest/gtest.h>

#include <vector>

namespace bnlab::kernels {
namespace {

// The pieces of a plane cover each of its 64-byte steps once, in order, over the loop's steps,
// whatever the plane's size against the number of steps (more steps than parts, fewer, a partial
// last step). (The last byte's line, which part() adds, has no observable effect to test.)
TEST(PlanePrefetch, PiecesCoverEveryLineOnce) {
  for (const int64_t bytes : {1, 64, 65, 2304, 2704, 4096}) {
    for (const int64_t parts : {1, 3, 12, 26, 100}) {
      const PlanePrefetch ahead(bytes, parts);
      std::vector<int> asked((bytes + 63) / 64, 0);
      int64_t next = 0;
      for (int64_t k = 0; k < parts; ++k) {
        const auto [begin, end] = ahead.lines_of(k);
        ASSERT_LE(begin, end);
        if (begin < end) {
          EXPECT_EQ(begin, next) << bytes << " bytes, " << parts << " parts, part " << k;
          next = end;
        }
        for (int64_t i = begin; i < end; ++i) ++asked.at(static_cast<size_t>(i));
      }
      EXPECT_EQ(asked, std::vector<int>(asked.size(), 1)) << bytes << " bytes, " << parts << " parts";
    }
  }
}

}  // namespace
}  // namespace bnlab::kernels
