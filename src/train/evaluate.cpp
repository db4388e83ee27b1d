// The eval-mode pass over a whole data set, as the test pass of PyTorch's MNIST example.
#include <numeric>

#include "bnlab/loss.h"
#include "bnlab/train.h"

namespace bnlab {

EvalResult evaluate(Network& net, const Dataset& set, const DataSource& source, int64_t batch_size,
                    std::vector<float>* outputs) {
  require_log_probabilities(net);
  // Batches beyond the training capacity run through the inference path: small pieces with BN,
  // ReLU and max-pooling folded into the convolutions (Network::reserve_inference), the same
  // outputs as the layer-by-layer pass, several times faster.
  net.reserve_inference(batch_size);
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = set.height * set.width;
  std::vector<float> input(static_cast<size_t>(batch_size * pixels));
  std::vector<uint8_t> labels(static_cast<size_t>(batch_size));
  std::vector<int64_t> indices(static_cast<size_t>(batch_size));
  EvalResult result;
  double loss_sum = 0;
  if (outputs) outputs->resize(static_cast<size_t>(set.count * classes));
  for (int64_t begin = 0; begin < set.count; begin += batch_size) {
    const int64_t n = std::min(batch_size, set.count - begin);
    std::iota(indices.begin(), indices.begin() + n, begin);
    gather_batch(input.data(), labels.data(), set, source, indices.data(), n);
    const float* logp = net.forward(input.data(), n, {.mode = Mode::Eval});
    loss_sum += nll_loss(nullptr, logp, labels.data(), n, classes) * static_cast<double>(n);
    result.correct += count_correct(logp, labels.data(), n, classes);
    if (outputs) std::copy(logp, logp + n * classes, outputs->begin() + begin * classes);
  }
  result.count = set.count;
  result.loss = loss_sum / static_cast<double>(set.count);
  return result;
}

}  // namespace bnlab
