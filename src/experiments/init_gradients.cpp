#include "experiments/init_gradients.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "bnlab/loss.h"

namespace bnlab::experiments {

std::vector<WeightGradient> weight_gradients_at_init(Network& net, const DataSource& data, int64_t n) {
  n = std::min(n, data.train.count);
  const int64_t classes = numel(net.output_shape());
  net.reserve(n);
  std::vector<float> x(static_cast<size_t>(n * data.train.height * data.train.width)), dlogp(static_cast<size_t>(n * classes));
  std::vector<uint8_t> labels(static_cast<size_t>(n));
  std::vector<int64_t> indices(static_cast<size_t>(n));
  std::iota(indices.begin(), indices.end(), int64_t{0});
  gather_batch(x.data(), labels.data(), data.train, data, indices.data(), n);
  const float* logp = net.forward(x.data(), n, {.mode = Mode::Train});
  nll_loss(dlogp.data(), logp, labels.data(), n, classes);
  net.zero_grad();
  net.backward(dlogp.data(), n);
  std::vector<WeightGradient> norms;
  for (const TensorView& g : net.named_gradients()) {
    if (g.shape.size() < 2 || !g.name.ends_with(".weight")) continue;
    double s = 0;
    const float* v = static_cast<const float*>(g.data);
    for (int64_t i = 0; i < numel(g.shape); ++i) s += static_cast<double>(v[i]) * v[i];
    norms.push_back({g.name, std::sqrt(s)});
  }
  net.zero_grad();
  return norms;
}

}  // namespace bnlab::experiments
