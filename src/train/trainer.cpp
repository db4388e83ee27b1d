#include <chrono>
#include <cmath>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/rng.h"
#include "bnlab/train.h"
#include "train/resume.h"

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

// A contiguous range of the gradient buffer, complete once backward has run layer closes_after.
struct GradientBucket {
  int64_t begin, end;
  size_t closes_after;
};

// Buckets in the order backward completes them: layers from the last, their gradient slices
// (laid out in layer order) joined until a bucket holds bucket_bytes. Empty: no buckets.
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

}  // namespace

EvalResult evaluate(Network& net, const Dataset& set, const DataSource& source, int64_t batch_size,
                    std::vector<float>* outputs) {
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

TrainResult train(Network& net, const DataSource& data, const TrainOptions& options,
                  TrainObserver& observer, const std::string& resume_path) {
  if (options.batch_size <= 0) fail("train", "batch_size", "must be positive");
  if (options.test_batch_size <= 0) fail("train", "test_batch_size", "must be positive");
  if (options.epochs <= 0) fail("train", "epochs", "must be positive");
  if (options.checkpoint_every > 0 && options.checkpoint_path.empty()) {
    fail("train", "checkpoint_every", "needs a checkpoint path");
  }
  const Dataset& set = data.train;
  const Shape expected{1, set.height, set.width};
  if (net.input_shape() != expected) {
    fail(set.images_path, "dimensions",
         "images are " + to_string(expected) + " but the network expects " + to_string(net.input_shape()));
  }
  const int64_t classes = numel(net.output_shape());
  const int64_t pixels = set.height * set.width;
  net.reserve(options.batch_size);
  if (!net.eval_is_per_sample()) net.reserve_inference(options.test_batch_size);

  Communicator single_process;
  Communicator& comm = options.comm ? *options.comm : single_process;
  const int processes = comm.size();
  const bool lead = comm.rank() == 0;
  if (options.sync_batchnorm) net.set_communicator(&comm);

  std::unique_ptr<Optimizer> optimizer = make_optimizer(options.optimizer, static_cast<int64_t>(net.parameters().size()));
  TrainPosition at;
  if (!resume_path.empty()) at = load_train_checkpoint(resume_path, net, *optimizer, options, data);
  const StepLR schedule{.base_lr = options.optimizer.lr, .gamma = options.gamma};
  std::vector<float> input(static_cast<size_t>(options.batch_size * pixels));
  std::vector<float> dlogp(static_cast<size_t>(options.batch_size * classes));
  std::vector<uint8_t> labels(static_cast<size_t>(options.batch_size));
  std::vector<int64_t> order(static_cast<size_t>(set.count));
  // This process's share of each epoch: every P-th sample from its rank on, the order padded by
  // its own beginning to a multiple of P (DistributedSampler's rule).
  const int64_t shard_size = (set.count + processes - 1) / processes;
  std::vector<int64_t> shard(static_cast<size_t>(shard_size));
  // What a skipped step puts back: BN statistics move during the forward pass.
  std::vector<float> saved_buffers(net.buffers().size());
  std::vector<int64_t> saved_counters(net.counters().size());
  const uint64_t dropout_key = derive_key(options.seed, static_cast<uint64_t>(Stream::Dropout));
  const std::vector<GradientBucket> buckets = processes > 1 ? gradient_buckets(net, options.bucket_bytes)
                                                            : std::vector<GradientBucket>{};
  const int64_t batches = (shard_size + options.batch_size - 1) / options.batch_size;

  const auto start = Clock::now();
  auto elapsed = [&] { return at.seconds + seconds_since(start); };
  // `position` is where a resumed run starts: always the beginning of a batch.
  auto checkpoint = [&](TrainPosition position) {
    if (options.checkpoint_path.empty() || !lead) return;  // one writer; a library caller may only stop
    position.seconds = elapsed();
    save_train_checkpoint(options.checkpoint_path, net, *optimizer, options, data, position);
  };
  auto interrupt_requested = [&] { return options.stop_requested && options.stop_requested->load(); };
  bool stop_agreed = false;  // every process has seen the interrupt by the end of this step
  TrainResult result;
  bool stop = options.max_steps > 0 && at.step >= options.max_steps;
  for (; at.epoch < options.epochs && !stop; ++at.epoch) {
    const double lr = schedule.lr_at(at.epoch);
    shuffle(order, options.seed, at.epoch);
    for (int64_t i = 0; i < shard_size; ++i) shard[i] = order[(comm.rank() + i * processes) % set.count];
    while (at.batch < batches && !stop) {
      const int64_t begin = at.batch * options.batch_size;
      const int64_t n = std::min(options.batch_size, shard_size - begin);
      gather_batch(input.data(), labels.data(), set, data, shard.data() + begin, n);
      if (processes > 1 && !options.sync_batchnorm) {  // DDP's broadcast_buffers
        comm.broadcast(net.buffers().data(), static_cast<int64_t>(net.buffers().size()));
        comm.broadcast(net.counters().data(), static_cast<int64_t>(net.counters().size()));
      }
      if (options.on_nan == TrainOptions::OnNan::Skip) {
        std::copy(net.buffers().begin(), net.buffers().end(), saved_buffers.begin());
        std::copy(net.counters().begin(), net.counters().end(), saved_counters.begin());
      }
      ++at.step;
      const float* logp = net.forward(input.data(), n,
                                      {.mode = Mode::Train, .random_key = derive_key(dropout_key, static_cast<uint64_t>(at.step))});
      const double local_loss = nll_loss(dlogp.data(), logp, labels.data(), n, classes);
      // One small all-reduce agrees on the mean loss, on a fault anywhere and on an interrupt,
      // so that every process takes the same branch and the collectives below stay matched.
      double agreed[3] = {std::isfinite(local_loss) ? local_loss : 0.0, std::isfinite(local_loss) ? 0.0 : 1.0,
                          interrupt_requested() ? 1.0 : 0.0};
      comm.allreduce_sum(agreed, 3);
      const double loss = agreed[1] > 0 ? local_loss : agreed[0] / processes;
      stop_agreed = agreed[2] > 0;
      std::string fault;
      if (agreed[1] > 0) {
        fault = std::isfinite(local_loss)
                    ? "loss is not finite on another process"
                    : "loss is " + std::to_string(local_loss) + "; first non-finite output in " + first_non_finite_layer(net, n);
      } else {
        net.zero_grad();
        if (processes > 1 && !buckets.empty()) {  // the mean of the processes' gradients
          size_t next = 0;
          net.backward(dlogp.data(), n, nullptr, [&](size_t layer) {
            for (; next < buckets.size() && buckets[next].closes_after == layer; ++next) {
              comm.start_sum(net.gradients().data() + buckets[next].begin, buckets[next].end - buckets[next].begin);
            }
            comm.progress();
          });
          comm.finish_sums();
        } else {
          net.backward(dlogp.data(), n);
          if (processes > 1) comm.allreduce_sum(net.gradients().data(), static_cast<int64_t>(net.gradients().size()));
        }
        if (processes > 1) {
          const float scale = 1.0f / static_cast<float>(processes);
          for (float& g : net.gradients()) g *= scale;
        }
        if (const std::string bad = first_non_finite_gradient(net); !bad.empty()) {
          fault = "gradient of " + bad + " is not finite (loss " + std::to_string(loss) + ")";
        }
      }
      if (!fault.empty() && options.on_nan == TrainOptions::OnNan::Stop) {
        fail("training", "step " + std::to_string(at.step),
             fault + "; try a smaller --lr" +
                 (options.checkpoint_path.empty() ? "" : "; the last good checkpoint is " + options.checkpoint_path));
      }
      if (!fault.empty()) {
        std::copy(saved_buffers.begin(), saved_buffers.end(), net.buffers().begin());
        std::copy(saved_counters.begin(), saved_counters.end(), net.counters().begin());
        ++at.skipped;
      } else {
        optimizer->step(net.parameters(), net.gradients(), lr);
        at.epoch_loss += loss;
        at.interval_loss += loss;
        ++at.epoch_batches;
        ++at.interval_batches;
      }
      ++at.batch;
      stop = options.max_steps > 0 && at.step >= options.max_steps;
      if (lead && (at.step % options.log_interval == 0 || at.batch == batches || stop)) {
        observer.on_step({.step = at.step, .epoch = at.epoch + 1, .seen = std::min(set.count, (begin + n) * processes), .epoch_size = set.count,
                          .train_loss = at.interval_loss / static_cast<double>(std::max<int64_t>(at.interval_batches, 1)),
                          .lr = lr, .seconds = elapsed()});
        at.interval_loss = 0;
        at.interval_batches = 0;
      }
      if (at.batch == batches) break;  // the epoch's evaluation and its checkpoint follow
      if (stop_agreed) {
        checkpoint(at);
        result.interrupted = true;
        break;
      }
      if (options.checkpoint_every > 0 && at.step % options.checkpoint_every == 0) checkpoint(at);
    }
    if (result.interrupted) break;
    // After every epoch, and when --max-steps ends the run inside one; by rank 0 alone.
    if (lead) {
      EpochReport report{.step = at.step, .epoch = at.epoch + 1,
                         .train_loss = at.epoch_loss / static_cast<double>(std::max<int64_t>(at.epoch_batches, 1)),
                         .test = evaluate(net, data.test, data, options.test_batch_size),
                         .lr = lr, .seconds = 0};
      report.seconds = elapsed();
      observer.on_epoch(report);
      result.test = report.test;
    }
    result.epochs = at.epoch + 1;
    at.epoch_loss = 0;
    at.epoch_batches = 0;
    at.batch = 0;
    const bool due = options.checkpoint_every > 0 && at.step % options.checkpoint_every == 0;
    if (due || stop_agreed) {
      TrainPosition next = at;
      ++next.epoch;
      checkpoint(next);
      if (stop_agreed) {
        result.interrupted = true;
        ++at.epoch;
        break;
      }
    }
  }
  result.steps = at.step;
  result.skipped = at.skipped;
  result.seconds = elapsed();
  return result;
}

}  // namespace bnlab
