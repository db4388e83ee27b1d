#include "train/data_parallel.h"

namespace bnlab {

std::vector<GradientBucket> gradient_buckets(const Network& net, int64_t bucket_bytes) {
  std::vector<GradientBucket> buckets;
  if (bucket_bytes <= 0) return buckets;
  int64_t end = -1;
  for (size_t i = net.layer_count(); i-- > 0;) {
    const int64_t begin = net.parameter_offset(i);
    if (begin < 0) continue;
    if (end < 0) end = net.parameter_end(i);
    if ((end - begin) * static_cast<int64_t>(sizeof(float)) >= bucket_bytes) {
      buckets.push_back({begin, end, i});
      end = -1;
    }
  }
  // What is left, with the first layers' gradients, closes after the first layer with parameters.
  for (size_t i = 0; i < net.layer_count() && end >= 0; ++i) {
    if (net.parameter_offset(i) < 0) continue;
    buckets.push_back({net.parameter_offset(i), end, i});
    end = -1;
  }
  return buckets;
}

void shard_of(std::vector<int64_t>& shard, const std::vector<int64_t>& order, int rank, int processes) {
  const int64_t count = static_cast<int64_t>(order.size());
  for (size_t i = 0; i < shard.size(); ++i) shard[i] = order[(rank + static_cast<int64_t>(i) * processes) % count];
}

void backward_averaged(Network& net, const float* dlogp, int64_t n, Communicator& comm,
                       const std::vector<GradientBucket>& buckets) {
  if (!buckets.empty()) {
    size_t next = 0;
    net.backward(dlogp, n, nullptr, [&](size_t layer) {
      for (; next < buckets.size() && buckets[next].closes_after == layer; ++next) {
        comm.start_sum(net.gradients().data() + buckets[next].begin, buckets[next].end - buckets[next].begin);
      }
      comm.progress();
    });
    comm.finish_sums();
  } else {
    net.backward(dlogp, n);
    comm.allreduce_sum(net.gradients().data(), static_cast<int64_t>(net.gradients().size()));
  }
  const float scale = 1.0f / static_cast<float>(comm.size());
  for (float& g : net.gradients()) g *= scale;
}

}  // namespace bnlab
