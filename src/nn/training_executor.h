// Runs a network's layers for training (and small eval batches): every activation kept for the
// backward pass, activation gradients in two ping-pong buffers, BatchNorm+ReLU (and the 2x2
// max-pool after them, where the batch allows) fused unless the plan says otherwise
// (nn/fusion.h). The layers belong to the Network; this owns the buffers.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "bnlab/layer.h"
#include "bnlab/network.h"
#include "nn/fusion.h"

namespace bnlab {

class TrainingExecutor {
 public:
  // shapes[0] is the input, shapes[i + 1] layer i's output (per sample).
  TrainingExecutor(std::span<NamedLayer> layers, std::span<const Shape> shapes, Fusion fusion);

  Fusion fusion() const { return fusion_; }
  // Activations for batches of up to max_batch; idempotent for smaller batches.
  void reserve(int64_t max_batch);
  int64_t capacity() const { return capacity_; }

  const float* forward(const float* x, int64_t n, const RunContext& ctx);
  void backward(const float* dout, int64_t n, float* dinput, const std::function<void(size_t)>& layer_done);
  // Null for the BatchNorm and ReLU of a fused max-pool in the last forward (never written).
  const float* activation(size_t i) const {
    return pooled_[i] || (i > 0 && pooled_[i - 1]) ? nullptr : outputs_[i];
  }

 private:
  // A layer whose output is its input's memory: a view, or a ReLU applied by the layer before.
  bool aliased(size_t i) const { return plan_.absorbed[i] || layers_[i].layer->is_view(); }

  std::span<NamedLayer> layers_;
  std::span<const Shape> shapes_;
  Fusion fusion_;
  TrainingPlan plan_;
  int64_t capacity_ = 0;
  std::vector<AlignedVector<float>> storage_;
  std::vector<float*> outputs_;
  std::vector<bool> pooled_;  // layer i applied the max-pool at i + 2 in this batch's forward
  const float* input_ = nullptr;
  AlignedVector<float> grad_a_, grad_b_;  // ping-pong activation gradients
};

}  // namespace bnlab
