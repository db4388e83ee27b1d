#include "bnlab/network.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "bnlab/error.h"
#include "bnlab/rng.h"

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
    : layers_(std::move(layers)), absorbed_(layers_.size(), false) {
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

void Network::fuse_batchnorm_relu() {
  if (capacity_ > 0) fail("network", "fuse", "fuse before reserving activations");
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    if (layers_[i + 1].layer->type() == "ReLU" && !absorbed_[i] && layers_[i].layer->fuse_relu()) {
      absorbed_[i + 1] = true;
    }
  }
}

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

void Network::reserve(int64_t max_batch) {
  reserve_layers(max_batch);
  if (max_batch <= capacity_) return;
  activation_storage_.assign(layers_.size(), {});
  outputs_.assign(layers_.size(), nullptr);
  int64_t largest = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t size = max_batch * numel(shapes_[i + 1]);
    largest = std::max(largest, size);
    if (!aliased(i)) activation_storage_[i].assign(size, 0.0f);
  }
  grad_a_.assign(largest, 0.0f);
  grad_b_.assign(largest, 0.0f);
  capacity_ = max_batch;
}

void Network::reserve_inference(int64_t max_batch) {
  if (max_batch <= inference_capacity_ || max_batch <= capacity_) return;
  // Per-sample networks run big eval batches in pieces whose activations stay in cache; a
  // network whose eval mixes samples (BN without running statistics) needs the whole batch.
  const int64_t piece = eval_is_per_sample() ? std::min(max_batch, kInferencePiece) : max_batch;
  reserve_layers(piece);
  int64_t largest = 0;
  for (size_t i = 0; i < layers_.size(); ++i) largest = std::max(largest, piece * numel(shapes_[i + 1]));
  infer_a_.assign(largest, 0.0f);
  infer_b_.assign(largest, 0.0f);
  infer_out_.assign(max_batch * numel(shapes_.back()), 0.0f);
  int64_t channels = 0;  // the widest per-channel epilogue a fused layer may need
  for (size_t i = 0; i < layers_.size(); ++i) channels = std::max(channels, shapes_[i + 1].empty() ? 1 : shapes_[i + 1][0]);
  infer_scale_.assign(channels, 0.0f);
  infer_shift_.assign(channels, 0.0f);
  inference_capacity_ = max_batch;
  inference_piece_ = piece;
}

const float* Network::forward(const float* x, int64_t n, const RunContext& ctx) {
  const bool keep = n <= capacity_;
  if (n <= 0 || !(keep || (ctx.mode == Mode::Eval && n <= inference_capacity_))) {
    fail("network", "batch", "batch of " + std::to_string(n) + " samples exceeds the reserved " +
                                 std::to_string(std::max(capacity_, inference_capacity_)));
  }
  if (!keep) return infer(x, n, ctx);
  input_ = x;
  const float* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i].layer;
    // A view shares its input's memory; x is the caller's and stays const for every real layer.
    float* out = aliased(i) ? const_cast<float*>(in) : activation_storage_[i].data();
    RunContext layer_ctx = ctx;
    layer_ctx.random_key = derive_key(ctx.random_key, i);
    if (!absorbed_[i]) layer.forward(out, in, n, layer_ctx);
    outputs_[i] = out;
    in = out;
  }
  return in;
}

// Eval mode beyond the training capacity: piece by piece through two ping-pong buffers, no
// activations kept; layers that are the identity in eval mode (Dropout) are skipped, and a layer
// that can apply what follows it (a convolution: BN's affine map, ReLU, 2x2 max-pool) does.
const float* Network::infer(const float* x, int64_t n, const RunContext& ctx) {
  input_ = nullptr;
  const int64_t in_size = numel(shapes_.front()), out_size = numel(shapes_.back());
  for (int64_t begin = 0; begin < n; begin += inference_piece_) {
    const int64_t len = std::min(inference_piece_, n - begin);
    const float* in = x + begin * in_size;
    for (size_t i = 0; i < layers_.size();) {
      Layer& layer = *layers_[i].layer;
      if (absorbed_[i] || layer.identity_in_eval()) {
        ++i;
        continue;
      }
      float* out = layer.is_view() ? const_cast<float*>(in) : in == infer_a_.data() ? infer_b_.data() : infer_a_.data();
      if (const size_t next = infer_fused(i, out, in, len); next > i) {
        i = next;
      } else {
        RunContext layer_ctx = ctx;
        layer_ctx.random_key = derive_key(ctx.random_key, i);
        layer_ctx.backward_follows = false;
        layer.forward(out, in, len, layer_ctx);
        ++i;
      }
      in = out;
    }
    std::copy(in, in + len * out_size, infer_out_.begin() + begin * out_size);
  }
  return infer_out_.data();
}

// Layer i with the layers after it that it can apply as its epilogue: an eval-mode affine
// normalization, a ReLU (absorbed by that normalization or not), a 2x2 max-pool. Returns the
// index of the first layer not run, or i if nothing was fused.
size_t Network::infer_fused(size_t i, float* out, const float* in, int64_t n) {
  Epilogue e;
  size_t next = i + 1;
  const auto type_at = [&](size_t j) { return j < layers_.size() ? layers_[j].layer->type() : std::string_view(); };
  if (next < layers_.size() && layers_[next].layer->eval_affine(infer_scale_.data(), infer_shift_.data())) {
    e.scale = infer_scale_.data();
    e.shift = infer_shift_.data();
    ++next;
  }
  if (type_at(next) == "ReLU") {
    e.relu = true;
    ++next;
  }
  if (next < layers_.size() && layers_[next].layer->is_maxpool2x2()) {
    e.maxpool2x2 = true;
    ++next;
  }
  if (next == i + 1) return i;
  Layer& layer = *layers_[i].layer;
  if (layer.forward_fused(out, in, n, e)) return next;
  if (!e.maxpool2x2) return i;
  e.maxpool2x2 = false;  // the pooling on its own, then
  return layer.forward_fused(out, in, n, e) ? next - 1 : i;
}

void Network::backward(const float* dout, int64_t n, float* dinput, const std::function<void(size_t)>& layer_done) {
  const float* grad = dout;
  for (size_t i = layers_.size(); i-- > 0;) {
    Layer& layer = *layers_[i].layer;
    const float* in = i == 0 ? input_ : outputs_[i - 1];
    if (absorbed_[i]) continue;  // its layer before applies its backward too
    float* dx = dinput;
    if (i > 0) {
      if (aliased(i)) dx = const_cast<float*>(grad);
      else dx = grad == grad_a_.data() ? grad_b_.data() : grad_a_.data();
    }
    layer.backward(dx, grad, in, outputs_[i], n);
    if (layer_done) layer_done(i);
    grad = dx;
  }
}

void Network::zero_grad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

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
