#include "nn/training_executor.h"

#include <algorithm>

#include "bnlab/rng.h"
#include "layers/layer_kinds.h"

namespace bnlab {

TrainingExecutor::TrainingExecutor(std::span<NamedLayer> layers, std::span<const Shape> shapes, Fusion fusion)
    : layers_(layers), shapes_(shapes), fusion_(fusion), plan_(plan_training(layers, fusion)),
      outputs_(layers.size(), nullptr), pooled_(layers.size(), false) {}

void TrainingExecutor::reserve(int64_t max_batch) {
  if (max_batch <= capacity_) return;
  storage_.assign(layers_.size(), {});
  int64_t largest = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t size = max_batch * numel(shapes_[i + 1]);
    largest = std::max(largest, size);
    if (!aliased(i)) storage_[i].assign(size, 0.0f);
  }
  grad_a_.assign(largest, 0.0f);
  grad_b_.assign(largest, 0.0f);
  capacity_ = max_batch;
}

const float* TrainingExecutor::forward(const float* x, int64_t n, const RunContext& ctx) {
  input_ = x;
  const float* in = x;
  std::fill(pooled_.begin(), pooled_.end(), false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i].layer;
    // A view shares its input's memory; x is the caller's and stays const for every real layer.
    float* out = aliased(i) ? const_cast<float*>(in) : storage_[i].data();
    RunContext layer_ctx = ctx;
    layer_ctx.random_key = derive_key(ctx.random_key, i);
    if (plan_.may_pool[i] && as<BatchNormLayer>(layer).can_fuse_pool(layer_ctx)) {
      // BN, ReLU and pool in one: only the pool's output is written (BN's own stays unwritten), and
      // its argmax only where a backward follows, as MaxPool2d's forward.
      float* pooled = storage_[i + 2].data();
      int32_t* argmax = layer_ctx.backward_follows ? as<MaxPool2dLayer>(*layers_[i + 2].layer).argmax() : nullptr;
      as<BatchNormLayer>(layer).forward_relu_pool(pooled, argmax, in, n, layer_ctx);
      pooled_[i] = true;
      outputs_[i] = outputs_[i + 1] = out;
      outputs_[i + 2] = pooled;
      in = pooled;
      i += 2;
      continue;
    }
    if (plan_.applies_relu[i]) as<BatchNormLayer>(layer).forward_relu(out, in, n, layer_ctx);
    else if (!plan_.absorbed[i]) layer.forward(out, in, n, layer_ctx);
    outputs_[i] = out;
    in = out;
  }
  return in;
}

void TrainingExecutor::backward(const float* dout, int64_t n, float* dinput,
                                const std::function<void(size_t)>& layer_done) {
  const float* grad = dout;
  for (size_t i = layers_.size(); i-- > 0;) {
    if (plan_.absorbed[i]) continue;  // its layer before applies its backward too
    if (i >= 2 && pooled_[i - 2]) continue;  // a pool the BatchNorm two before applied
    Layer& layer = *layers_[i].layer;
    const float* in = i == 0 ? input_ : outputs_[i - 1];
    float* dx = dinput;
    if (i > 0) dx = aliased(i) ? const_cast<float*>(grad) : grad == grad_a_.data() ? grad_b_.data() : grad_a_.data();
    if (pooled_[i]) {
      as<BatchNormLayer>(layer).backward_relu_pool(dx, grad, as<MaxPool2dLayer>(*layers_[i + 2].layer).argmax(), in, n);
    } else if (plan_.applies_relu[i]) as<BatchNormLayer>(layer).backward_relu(dx, grad, in, outputs_[i], n);
    else layer.backward(dx, grad, in, outputs_[i], n);
    if (layer_done) layer_done(i);
    grad = dx;
  }
}

}  // namespace bnlab
