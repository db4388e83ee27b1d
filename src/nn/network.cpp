#include "bnlab/network.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "bnlab/error.h"
#include "bnlab/rng.h"
#include "kernels/elementwise.h"
#include "nn/inference_executor.h"
#include "nn/training_executor.h"

namespace bnlab {
namespace {
// Eval batches beyond the training capacity run in pieces of this many samples: the largest
// activation of the seed network for a piece (32 x 64 x 24 x 24 floats, 4.7 MB) stays in cache,
// where a whole batch of 1,000 would stream 150 MB through memory per layer. Measured here at
// batch 1,000 on 2 threads: pieces of 8, 16, 32 and 64 gave 8,260, 8,710, 9,590 and 9,260
// images/s, the whole batch at once 7,120.
constexpr int64_t kInferencePiece = 32;
// Slices start on 64-byte boundaries so that vector loads never straddle two tensors.
constexpr int64_t kAlignFloats = 16;
int64_t aligned(int64_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }
}  // namespace

Network::Network(std::vector<NamedLayer> layers, const Shape& input_shape)
    : layers_(std::move(layers)) {
  // Every size is checked against kMaxValues before the next layer sees it and before anything
  // is allocated: a spec asking for a huge layer is an Error, not an overflow or a bad_alloc.
  const std::string limit = std::to_string(kMaxValues);
  shapes_.push_back(input_shape);
  int64_t activations = checked_numel(input_shape, "network", "input");  // per sample
  for (auto& entry : layers_) {
    shapes_.push_back(entry.layer->setup(shapes_.back()));
    activations += checked_numel(shapes_.back(), "network", entry.name);
    if (activations > kMaxValues) {
      fail("network", entry.name, "too large: the layers up to here output more than " + limit +
                                      " values per sample");
    }
  }

  int64_t sizes[3] = {0, 0, 0};  // parameters, buffers, counters
  for (auto& entry : layers_) {
    std::vector<Slot> slots;
    for (TensorDecl& decl : entry.layer->declare()) {
      const int role = static_cast<int>(decl.role);
      const std::string name = entry.name + "." + decl.name;
      const int64_t n = checked_numel(decl.shape, "network", name);
      slots.push_back({name, decl, sizes[role]});
      sizes[role] += decl.role == Role::Counter ? n : aligned(n);
      if (sizes[role] > kMaxValues) {
        fail("network", name, std::string("too large: the network's ") +
                                  (decl.role == Role::Parameter ? "parameters" : "running statistics") +
                                  " would exceed " + limit + " values");
      }
    }
    slots_.push_back(std::move(slots));
  }
  params_.assign(sizes[0], 0.0f);
  grads_.assign(sizes[0], 0.0f);
  buffers_.assign(sizes[1], 0.0f);
  counters_.assign(sizes[2], 0);
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<TensorSlot> bound;
    for (const Slot& s : slots_[i]) {
      TensorSlot t;
      if (s.decl.role == Role::Parameter) {
        t.data = params_.data() + s.offset;
        t.grad = grads_.data() + s.offset;
      } else if (s.decl.role == Role::Buffer) {
        t.data = buffers_.data() + s.offset;
      } else {
        t.counter = counters_.data() + s.offset;
      }
      bound.push_back(t);
    }
    layers_[i].layer->bind(bound);
    layers_[i].layer->reset_state();  // running_var starts at 1, as in PyTorch
  }
}

Network::Network(Network&&) noexcept = default;
Network& Network::operator=(Network&&) noexcept = default;
Network::~Network() = default;

void Network::set_communicator(Communicator* comm) {
  for (auto& entry : layers_) entry.layer->set_communicator(comm);
}

void Network::initialize(uint64_t seed) {
  const uint64_t init_key = derive_key(seed, static_cast<uint64_t>(Stream::Init));
  uint64_t tensor_index = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (const Slot& s : slots_[i]) {
      const uint64_t key = derive_key(init_key, tensor_index++);
      if (s.decl.role != Role::Parameter) continue;
      float* data = params_.data() + s.offset;
      const int64_t n = numel(s.decl.shape);
      switch (s.decl.init) {
        case Init::FanInUniform: {
          const double bound = 1.0 / std::sqrt(static_cast<double>(s.decl.fan_in));
          for (int64_t j = 0; j < n; ++j) {
            const double u = random_uniform(key, static_cast<uint64_t>(j));
            data[j] = static_cast<float>((2.0 * u - 1.0) * bound);
          }
          break;
        }
        case Init::KaimingNormal: {
          // Box-Muller on two uniforms per value; 1 - u keeps the logarithm's argument in (0, 1].
          const double std = s.decl.gain * std::sqrt(2.0 / static_cast<double>(s.decl.fan_in));
          for (int64_t j = 0; j < n; ++j) {
            const double u1 = 1.0 - random_uniform(key, 2 * static_cast<uint64_t>(j));
            const double u2 = random_uniform(key, 2 * static_cast<uint64_t>(j) + 1);
            data[j] = static_cast<float>(std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
          }
          break;
        }
        case Init::Ones: std::fill(data, data + n, 1.0f); break;
        case Init::Zeros:
        case Init::None: std::fill(data, data + n, 0.0f); break;
      }
    }
    layers_[i].layer->reset_state();
  }
}

void Network::reserve_layers(int64_t max_batch) {
  const int threads = omp_get_max_threads();
  if (max_batch <= layer_capacity_ && threads == threads_) return;
  layer_capacity_ = std::max(layer_capacity_, max_batch);
  threads_ = threads;
  for (auto& entry : layers_) entry.layer->reserve(layer_capacity_, threads_);
}

void Network::reserve(int64_t max_batch, const ExecutorOptions& options) {
  reserve_layers(max_batch);
  if (!training_ || training_->fusion() != options.fusion) {
    training_ = std::make_unique<TrainingExecutor>(layers_, shapes_, options.fusion);
  }
  training_->reserve(max_batch);
}

int64_t Network::capacity() const { return training_ ? training_->capacity() : 0; }

void Network::reserve_inference(int64_t max_batch, const ExecutorOptions& options) {
  const bool same = inference_ && inference_->fusion() == options.fusion;
  if ((same && max_batch <= inference_->capacity()) || max_batch <= capacity()) return;
  // Per-sample networks run big eval batches in pieces whose activations stay in cache; a
  // network whose eval mixes samples (BN without running statistics) needs the whole batch.
  const int64_t piece = eval_is_per_sample() ? std::min(max_batch, kInferencePiece) : max_batch;
  reserve_layers(piece);
  inference_ = std::make_unique<InferenceExecutor>(layers_, shapes_, options.fusion, max_batch, piece);
}

const float* Network::forward(const float* x, int64_t n, const RunContext& ctx) {
  const bool keep = n <= capacity();
  const int64_t inference_capacity = inference_ ? inference_->capacity() : 0;
  if (n <= 0 || !(keep || (ctx.mode == Mode::Eval && n <= inference_capacity))) {
    fail("network", "batch", "batch of " + std::to_string(n) + " samples exceeds the reserved " +
                                 std::to_string(std::max(capacity(), inference_capacity)));
  }
  return keep ? training_->forward(x, n, ctx) : inference_->run(x, n, ctx);
}

void Network::backward(const float* dout, int64_t n, float* dinput, const std::function<void(size_t)>& layer_done) {
  if (!training_ || n <= 0 || n > capacity()) fail("network", "backward", "no training forward of this batch to go back through");
  training_->backward(dout, n, dinput, layer_done);
}

const float* Network::activation(size_t i) const { return training_ ? training_->activation(i) : nullptr; }

void Network::zero_grad() { kernels::fill_zero(grads_.data(), static_cast<int64_t>(grads_.size())); }

std::vector<TensorView> Network::state_dict() {
  std::vector<TensorView> views;
  for (const auto& layer_slots : slots_) {
    for (const Slot& s : layer_slots) {
      TensorView v{s.name, DType::F32, s.decl.shape, nullptr};
      if (s.decl.role == Role::Parameter) v.data = params_.data() + s.offset;
      else if (s.decl.role == Role::Buffer) v.data = buffers_.data() + s.offset;
      else {
        v.dtype = DType::I64;
        v.data = counters_.data() + s.offset;
      }
      views.push_back(v);
    }
  }
  return views;
}

std::vector<TensorView> Network::named_parameters() {
  std::vector<TensorView> views;
  for (const auto& layer_slots : slots_)
    for (const Slot& s : layer_slots)
      if (s.decl.role == Role::Parameter)
        views.push_back({s.name, DType::F32, s.decl.shape, params_.data() + s.offset});
  return views;
}

std::vector<TensorView> Network::named_gradients() {
  std::vector<TensorView> views = named_parameters();
  for (TensorView& v : views) v.data = grads_.data() + (static_cast<float*>(v.data) - params_.data());
  return views;
}

bool Network::eval_is_per_sample() const {
  for (const auto& entry : layers_)
    if (entry.layer->eval_mixes_samples()) return false;
  return true;
}

int64_t Network::parameter_offset(size_t i) const {
  for (const Slot& s : slots_[i])
    if (s.decl.role == Role::Parameter) return s.offset;
  return -1;
}

int64_t Network::parameter_end(size_t i) const {
  int64_t end = -1;
  for (const Slot& s : slots_[i])
    if (s.decl.role == Role::Parameter) end = s.offset + numel(s.decl.shape);
  return end;
}

int64_t Network::parameter_count(size_t i) const {
  int64_t total = 0;
  for (const Slot& s : slots_[i])
    if (s.decl.role == Role::Parameter) total += numel(s.decl.shape);
  return total;
}

}  // namespace bnlab
