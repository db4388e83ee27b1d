#include "bnlab/train_step.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/rng.h"
#include "train/data_parallel.h"

namespace bnlab {
namespace {

// The first layer whose output holds a NaN or infinity, for the divergence message.
std::string first_non_finite_layer(const Network& net, int64_t n) {
  for (size_t i = 0; i < net.layer_count(); ++i) {
    const float* out = net.activation(i);
    const int64_t size = n * numel(net.output_shape(i));
    for (int64_t j = 0; j < size; ++j) {
      if (!std::isfinite(out[j])) {
        return "layer " + std::to_string(i) + " '" + net.layer_name(i) + "' (" + std::string(net.layer(i).type()) + ")";
      }
    }
  }
  return "the loss only";
}

// The first parameter whose gradient holds a NaN or infinity, or "". The flat buffer is scanned
// first, so that a finite step allocates nothing (the names are only built for the message).
std::string first_non_finite_gradient(Network& net) {
  const std::span<float> all = net.gradients();
  if (std::all_of(all.begin(), all.end(), [](float g) { return std::isfinite(g); })) return "";
  for (const TensorView& g : net.named_gradients()) {
    const float* v = static_cast<const float*>(g.data);
    for (int64_t j = 0; j < numel(g.shape); ++j)
      if (!std::isfinite(v[j])) return g.name;
  }
  return "";
}

}  // namespace

struct TrainStep::Parallel {
  std::vector<GradientBucket> buckets;
};

void shuffle_epoch(std::vector<int64_t>& order, uint64_t seed, int64_t epoch) {
  std::iota(order.begin(), order.end(), 0);
  Rng rng(derive_key(derive_key(seed, static_cast<uint64_t>(Stream::Shuffle)), static_cast<uint64_t>(epoch)));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
}

std::string describe_fault(const StepResult& r) {
  switch (r.fault) {
    case StepResult::Fault::None: return "";
    case StepResult::Fault::Loss: return "loss is " + std::to_string(r.loss) + "; first non-finite output in " + r.where;
    case StepResult::Fault::Gradient: return "gradient of " + r.where + " is not finite (loss " + std::to_string(r.loss) + ")";
    case StepResult::Fault::OtherProcess: return "loss is not finite on another process";
  }
  return "";
}

TrainStep::TrainStep(Network& net, const DataSource& data, Optimizer& optimizer, int64_t max_batch,
                     const StepOptions& options, Fusion fusion)
    : net_(net), data_(data), optimizer_(optimizer), options_(options),
      dropout_key_(derive_key(options.seed, static_cast<uint64_t>(Stream::Dropout))),
      comm_(options.comm ? *options.comm : single_process_), parallel_(std::make_unique<Parallel>()) {
  require_log_probabilities(net);
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = data.train.height * data.train.width;
  net.reserve(max_batch, {.fusion = fusion});
  if (options.sync_batchnorm) net.set_communicator(&comm_);
  if (comm_.size() > 1) parallel_->buckets = gradient_buckets(net, options.bucket_bytes);
  input_.resize(static_cast<size_t>(max_batch * pixels));
  dlogp_.resize(static_cast<size_t>(max_batch * classes));
  labels_.resize(static_cast<size_t>(max_batch));
  if (options.restore_on_fault) {
    saved_buffers_.resize(net.buffers().size());
    saved_counters_.resize(net.counters().size());
  }
}

TrainStep::~TrainStep() = default;

StepResult TrainStep::run(const int64_t* indices, int64_t n, int64_t step, double lr, bool stop_requested,
                          const std::function<void(int64_t)>& after_backward) {
  const int processes = comm_.size();
  const int64_t classes = numel(net_.output_shape());
  gather_batch(input_.data(), labels_.data(), data_.train, data_, indices, n);
  if (processes > 1 && !options_.sync_batchnorm) {  // DDP's broadcast_buffers
    comm_.broadcast(net_.buffers().data(), static_cast<int64_t>(net_.buffers().size()));
    comm_.broadcast(net_.counters().data(), static_cast<int64_t>(net_.counters().size()));
  }
  if (options_.restore_on_fault) {  // BN statistics move during the forward pass
    std::copy(net_.buffers().begin(), net_.buffers().end(), saved_buffers_.begin());
    std::copy(net_.counters().begin(), net_.counters().end(), saved_counters_.begin());
  }
  const float* logp = net_.forward(input_.data(), n, {.mode = Mode::Train, .random_key = derive_key(dropout_key_, static_cast<uint64_t>(step))});
  const double local_loss = nll_loss(dlogp_.data(), logp, labels_.data(), n, classes);
  // One small all-reduce agrees on the mean loss, on a fault anywhere and on a stop request, so
  // that every process takes the same branch and the collectives below stay matched.
  double agreed[3] = {std::isfinite(local_loss) ? local_loss : 0.0, std::isfinite(local_loss) ? 0.0 : 1.0,
                      stop_requested ? 1.0 : 0.0};
  comm_.allreduce_sum(agreed, 3);
  StepResult result{.loss = agreed[1] > 0 ? local_loss : agreed[0] / processes, .stop_agreed = agreed[2] > 0};
  if (agreed[1] > 0) {
    result.fault = std::isfinite(local_loss) ? StepResult::Fault::OtherProcess : StepResult::Fault::Loss;
    if (result.fault == StepResult::Fault::Loss) result.where = first_non_finite_layer(net_, n);
  } else {
    net_.zero_grad();
    if (processes > 1) backward_averaged(net_, dlogp_.data(), n, comm_, parallel_->buckets);
    else net_.backward(dlogp_.data(), n);
    result.where = first_non_finite_gradient(net_);
    if (!result.where.empty()) result.fault = StepResult::Fault::Gradient;
  }
  if (result.fault != StepResult::Fault::None) {
    if (options_.restore_on_fault) {
      std::copy(saved_buffers_.begin(), saved_buffers_.end(), net_.buffers().begin());
      std::copy(saved_counters_.begin(), saved_counters_.end(), net_.counters().begin());
    }
    return result;
  }
  if (after_backward) after_backward(n);
  optimizer_.step(net_.parameters(), net_.gradients(), lr);
  return result;
}

}  // namespace bnlab
