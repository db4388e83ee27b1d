#include <chrono>
#include <cmath>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/rng.h"
#include "bnlab/train.h"

namespace bnlab {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Fisher-Yates from the epoch's own stream: the order depends only on (seed, epoch).
void shuffle(std::vector<int64_t>& order, uint64_t seed, int64_t epoch) {
  std::iota(order.begin(), order.end(), 0);
  Rng rng(derive_key(derive_key(seed, static_cast<uint64_t>(Stream::Shuffle)), static_cast<uint64_t>(epoch)));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
}

// Names the first layer whose output holds a NaN or infinity, for the divergence message.
std::string first_non_finite_layer(const Network& net, int64_t n) {
  for (size_t i = 0; i < net.layer_count(); ++i) {
    const float* out = net.activation(i);
    const int64_t size = n * numel(net.output_shape(i));
    for (int64_t j = 0; j < size; ++j) {
      if (!std::isfinite(out[j])) {
        return "layer " + std::to_string(i) + " '" + net.layer_name(i) + "' (" +
               std::string(net.layer(i).type()) + ")";
      }
    }
  }
  return "the loss only";
}

// Names the first parameter whose gradient holds a NaN or infinity, or returns "".
std::string first_non_finite_gradient(Network& net) {
  const std::vector<TensorView> grads = net.named_gradients();
  for (const TensorView& g : grads) {
    const float* v = static_cast<const float*>(g.data);
    for (int64_t j = 0; j < numel(g.shape); ++j)
      if (!std::isfinite(v[j])) return g.name;
  }
  return "";
}

}  // namespace

EvalResult evaluate(Network& net, const Dataset& set, const DataSource& source, int64_t batch_size) {
  net.reserve_inference(batch_size);
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = set.height * set.width;
  std::vector<float> input(static_cast<size_t>(batch_size * pixels));
  std::vector<uint8_t> labels(static_cast<size_t>(batch_size));
  std::vector<int64_t> indices(static_cast<size_t>(batch_size));
  EvalResult result;
  double loss_sum = 0;
  for (int64_t begin = 0; begin < set.count; begin += batch_size) {
    const int64_t n = std::min(batch_size, set.count - begin);
    std::iota(indices.begin(), indices.begin() + n, begin);
    gather_batch(input.data(), labels.data(), set, source, indices.data(), n);
    const float* logp = net.forward(input.data(), n, {.mode = Mode::Eval});
    loss_sum += nll_loss(nullptr, logp, labels.data(), n, classes) * static_cast<double>(n);
    result.correct += count_correct(logp, labels.data(), n, classes);
  }
  result.count = set.count;
  result.loss = loss_sum / static_cast<double>(set.count);
  return result;
}

TrainResult train(Network& net, const DataSource& data, const TrainOptions& options,
                  TrainObserver& observer) {
  if (options.batch_size <= 0) fail("train", "batch_size", "must be positive");
  if (options.test_batch_size <= 0) fail("train", "test_batch_size", "must be positive");
  if (options.epochs <= 0) fail("train", "epochs", "must be positive");
  const Dataset& set = data.train;
  const Shape expected{1, set.height, set.width};
  if (net.input_shape() != expected) {
    fail(set.images_path, "dimensions",
         "images are " + to_string(expected) + " but the network expects " + to_string(net.input_shape()));
  }
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = set.height * set.width;
  net.reserve(options.batch_size);
  net.reserve_inference(options.test_batch_size);

  std::unique_ptr<Optimizer> optimizer = make_optimizer(options.optimizer, static_cast<int64_t>(net.parameters().size()));
  const StepLR schedule{.base_lr = options.optimizer.lr, .gamma = options.gamma};
  std::vector<float> input(static_cast<size_t>(options.batch_size * pixels));
  std::vector<float> dlogp(static_cast<size_t>(options.batch_size * classes));
  std::vector<uint8_t> labels(static_cast<size_t>(options.batch_size));
  std::vector<int64_t> order(static_cast<size_t>(set.count));
  const uint64_t dropout_key = derive_key(options.seed, static_cast<uint64_t>(Stream::Dropout));

  const auto start = Clock::now();
  TrainResult result;
  int64_t step = 0;
  bool stop = false;
  for (int64_t epoch = 0; epoch < options.epochs && !stop; ++epoch) {
    const double lr = schedule.lr_at(epoch);
    shuffle(order, options.seed, epoch);
    double epoch_loss = 0, interval_loss = 0;
    int64_t epoch_batches = 0, interval_batches = 0;
    for (int64_t begin = 0; begin < set.count && !stop; begin += options.batch_size) {
      const int64_t n = std::min(options.batch_size, set.count - begin);
      gather_batch(input.data(), labels.data(), set, data, order.data() + begin, n);
      ++step;
      const float* logp = net.forward(input.data(), n,
                                      {.mode = Mode::Train, .random_key = derive_key(dropout_key, static_cast<uint64_t>(step))});
      const double loss = nll_loss(dlogp.data(), logp, labels.data(), n, classes);
      if (!std::isfinite(loss)) {
        fail("training", "step " + std::to_string(step),
             "loss is " + std::to_string(loss) + "; first non-finite output in " +
                 first_non_finite_layer(net, n) + " (try a smaller --lr)");
      }
      net.zero_grad();
      net.backward(dlogp.data(), n);
      if (const std::string bad = first_non_finite_gradient(net); !bad.empty()) {
        fail("training", "step " + std::to_string(step),
             "gradient of " + bad + " is not finite (loss " + std::to_string(loss) + "; try a smaller --lr)");
      }
      optimizer->step(net.parameters(), net.gradients(), lr);
      epoch_loss += loss;
      interval_loss += loss;
      ++epoch_batches;
      ++interval_batches;
      const bool last = begin + n >= set.count;
      stop = options.max_steps > 0 && step >= options.max_steps;
      if (step % options.log_interval == 0 || last || stop) {
        observer.on_step({.step = step, .epoch = epoch + 1, .seen = begin + n, .epoch_size = set.count,
                          .train_loss = interval_loss / static_cast<double>(interval_batches),
                          .lr = lr, .seconds = seconds_since(start)});
        interval_loss = 0;
        interval_batches = 0;
      }
    }
    EpochReport report{.step = step, .epoch = epoch + 1,
                       .train_loss = epoch_loss / static_cast<double>(std::max<int64_t>(epoch_batches, 1)),
                       .test = evaluate(net, data.test, data, options.test_batch_size),
                       .lr = lr, .seconds = 0};
    report.seconds = seconds_since(start);
    observer.on_epoch(report);
    result.test = report.test;
    result.epochs = epoch + 1;
  }
  result.steps = step;
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace bnlab
