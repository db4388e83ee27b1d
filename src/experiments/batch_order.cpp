#include "experiments/batch_order.h"

#include <algorithm>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/rng.h"

namespace bnlab::experiments {
namespace {

void shuffle(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace

std::vector<std::vector<int64_t>> indices_by_class(const Dataset& set, int64_t classes) {
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(classes));
  for (int64_t i = 0; i < set.count; ++i) {
    const int64_t label = set.labels[static_cast<size_t>(i)];
    if (label >= classes) fail(set.labels_path, "label", std::to_string(label) + " is not below " + std::to_string(classes));
    by_class[static_cast<size_t>(label)].push_back(i);
  }
  return by_class;
}

void single_class_batches(std::vector<int64_t>& order, const Dataset& set, int64_t classes, int64_t batch,
                          uint64_t seed, int64_t epoch) {
  if (batch <= 0 || batch > set.count) fail("experiment", "batch", std::to_string(batch) + " does not fit " + std::to_string(set.count) + " samples");
  std::vector<std::vector<int64_t>> by_class = indices_by_class(set, classes);
  Rng rng(random_bits(seed ^ 0x5c1a55b47c4e5ULL, static_cast<uint64_t>(epoch)));
  for (auto& members : by_class) shuffle(members, rng);

  // Shares of the batches by class size, the largest remainders rounded up.
  const int64_t batches = set.count / batch;
  std::vector<int64_t> share(by_class.size());
  std::vector<std::pair<int64_t, size_t>> remainders;  // (remainder, class)
  int64_t given = 0;
  for (size_t c = 0; c < by_class.size(); ++c) {
    const int64_t scaled = static_cast<int64_t>(by_class[c].size()) * batches;
    share[c] = scaled / set.count;
    given += share[c];
    remainders.push_back({scaled % set.count, c});
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; given < batches; ++i, ++given) ++share[remainders[i].second];

  std::vector<int64_t> batch_class;
  for (size_t c = 0; c < share.size(); ++c) batch_class.insert(batch_class.end(), static_cast<size_t>(share[c]), static_cast<int64_t>(c));
  shuffle(batch_class, rng);

  order.assign(static_cast<size_t>(set.count), 0);
  std::vector<int64_t> next(by_class.size(), 0);
  std::vector<bool> used(static_cast<size_t>(set.count), false);
  for (size_t b = 0; b < batch_class.size(); ++b) {
    const std::vector<int64_t>& members = by_class[static_cast<size_t>(batch_class[b])];
    int64_t& k = next[static_cast<size_t>(batch_class[b])];
    for (int64_t i = 0; i < batch; ++i, ++k) {
      const int64_t sample = members[static_cast<size_t>(k) % members.size()];
      order[b * static_cast<size_t>(batch) + static_cast<size_t>(i)] = sample;
      used[static_cast<size_t>(sample)] = true;
    }
  }
  size_t tail = batch_class.size() * static_cast<size_t>(batch);
  for (int64_t i = 0; i < set.count && tail < order.size(); ++i)
    if (!used[static_cast<size_t>(i)]) order[tail++] = i;
}

}  // namespace bnlab::experiments
