#include "bnlab/train_step.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/rng.h"
#include "kernels/elementwise.h"
#include "train/data_parallel.h"

namespace bnlab {
namespace {

// The first layer whose output holds a NaN or infinity, for the divergence message. Layers whose
// output the fused forward did not write (a BatchNorm and ReLU pooled by the layer after them)
// are named with the layer that wrote it.
std::string first_non_finite_layer(const Network& net, int64_t n) {
  auto describe = [&](size_t i) {
    return "layer " + std::to_string(i) + " '" + net.layer_name(i) + "' (" + std::string(net.layer(i).type()) + ")";
  };
  size_t unwritten_from = net.layer_count();  // the first of the unwritten layers just before
  for (size_t i = 0; i < net.layer_count(); ++i) {
    const float* out = net.activation(i);
    if (!out) {
      unwritten_from = std::min(unwritten_from, i);
      continue;
    }
    const int64_t size = n * numel(net.output_shape(i));
    for (int64_t j = 0; j < size; ++j) {
      if (!std::isfinite(out[j])) {
        if (unwritten_from < i) return describe(unwritten_from) + " to " + describe(i) + ", fused";
        return describe(i);
      }
    }
    unwritten_from = net.layer_count();
  }
  return "the loss only";
}

// The first parameter whose gradient holds a NaN or infinity, or "". The flat buffer is scanned
// first, so that a finite step allocates nothing (the names are only built for the message).
std::string first_non_finite_gradient(Network& net) {
  const std::span<float> all = net.gradients();
  if (kernels::all_finite(all.data(), static_cast<int64_t>(all.size()))) return "";
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
  if (options.accumulate < 1) fail("train", "accumulate", "must be at least 1");
  if (max_batch % options.accumulate != 0) {
    fail("train", "accumulate", std::to_string(options.accumulate) + " does not divide the batch size " +
                                    std::to_string(max_batch));
  }
  micro_ = max_batch / options.accumulate;
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = data.train.height * data.train.width;
  net.reserve(micro_, {.fusion = fusion});  // activations for a micro-batch: the point of accumulating
  if (options.sync_batchnorm) net.set_communicator(&comm_);
  if (comm_.size() > 1) parallel_->buckets = gradient_buckets(net, options.bucket_bytes);
  input_.resize(static_cast<size_t>(max_batch * pixels));
  dlogp_.resize(static_cast<size_t>(micro_ * classes));
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
  const int64_t pixels = data_.train.height * data_.train.width;
  gather_batch(input_.data(), labels_.data(), data_.train, data_, indices, n);
  if (processes > 1 && !options_.sync_batchnorm) {  // DDP's broadcast_buffers
    comm_.broadcast(net_.buffers().data(), static_cast<int64_t>(net_.buffers().size()));
    comm_.broadcast(net_.counters().data(), static_cast<int64_t>(net_.counters().size()));
  }
  if (options_.restore_on_fault) {  // BN statistics move during the forward passes
    std::copy(net_.buffers().begin(), net_.buffers().end(), saved_buffers_.begin());
    std::copy(net_.counters().begin(), net_.counters().end(), saved_counters_.begin());
  }
  const uint64_t step_key = derive_key(dropout_key_, static_cast<uint64_t>(step));
  StepResult result;
  double loss_sum = 0;  // of the micro-batches' scaled losses, summed over processes
  int64_t last_micro = 0;
  for (int64_t micro = 0, done = 0; done < n; ++micro, done += micro_) {
    const int64_t m = std::min(micro_, n - done);
    const uint8_t* labels = labels_.data() + done;
    const uint64_t key = options_.accumulate == 1 ? step_key : derive_key(step_key, static_cast<uint64_t>(micro));
    const float* logp = net_.forward(input_.data() + done * pixels, m, {.mode = Mode::Train, .random_key = key});
    double local_loss = nll_loss(dlogp_.data(), logp, labels, m, classes);
    if (m != n) {
      // The micro-batch's mean loss times w = m / n. PyTorch's (loss * w).backward() hands NLL's
      // backward the float w, which writes -(w / m) at each label: the same bits here.
      const double w = static_cast<double>(m) / static_cast<double>(n);
      local_loss *= w;
      const float g = -(static_cast<float>(w) / static_cast<float>(m));
      for (int64_t r = 0; r < m; ++r) dlogp_[static_cast<size_t>(r * classes + labels[r])] = g;
    }
    // One small all-reduce agrees on the loss, on a fault anywhere and on a stop request, so
    // that every process takes the same branch and the collectives below stay matched.
    double agreed[3] = {std::isfinite(local_loss) ? local_loss : 0.0, std::isfinite(local_loss) ? 0.0 : 1.0,
                        stop_requested ? 1.0 : 0.0};
    comm_.allreduce_sum(agreed, 3);
    result.stop_agreed = result.stop_agreed || agreed[2] > 0;
    if (agreed[1] > 0) {
      result.loss = local_loss;
      result.fault = std::isfinite(local_loss) ? StepResult::Fault::OtherProcess : StepResult::Fault::Loss;
      if (result.fault == StepResult::Fault::Loss) result.where = first_non_finite_layer(net_, m);
      break;
    }
    loss_sum += agreed[0];
    if (micro == 0) net_.zero_grad();
    // The gradients are summed across processes once, during the last micro-batch's backward.
    if (processes > 1 && done + m == n) backward_averaged(net_, dlogp_.data(), m, comm_, parallel_->buckets);
    else net_.backward(dlogp_.data(), m);
    last_micro = m;
  }
  if (result.fault == StepResult::Fault::None) {
    result.loss = loss_sum / processes;
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
  if (after_backward) after_backward(last_micro);
  optimizer_.step(net_.parameters(), net_.gradients(), lr);
  return result;
}

}  // namespace bnlab
