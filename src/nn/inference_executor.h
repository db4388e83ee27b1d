// Runs a network for eval-mode batches larger than the training capacity: in pieces whose
// activations stay in cache, through two ping-pong buffers, keeping no activations; the steps
// come from the fusion pass (nn/fusion.h), so a convolution applies the BatchNorm (eval), ReLU
// and 2x2 max-pool after it in its own output loop. The outputs are the bits of the layer-by-
// layer pass.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bnlab/layer.h"
#include "bnlab/network.h"
#include "nn/fusion.h"

namespace bnlab {

class InferenceExecutor {
 public:
  // Batches of up to max_batch, run `piece` samples at a time (layers reserved for a piece).
  InferenceExecutor(std::span<NamedLayer> layers, std::span<const Shape> shapes, Fusion fusion,
                    int64_t max_batch, int64_t piece);

  Fusion fusion() const { return fusion_; }
  int64_t capacity() const { return capacity_; }
  // x (n, input...) -> (n, output...), valid until the next call.
  const float* run(const float* x, int64_t n, const RunContext& ctx);

 private:
  std::span<NamedLayer> layers_;
  std::span<const Shape> shapes_;
  Fusion fusion_;
  std::vector<InferenceStep> steps_;
  int64_t capacity_ = 0, piece_ = 0;
  AlignedVector<float> a_, b_;   // ping-pong activations of one piece
  AlignedVector<float> out_;     // (capacity_, output...)
  std::vector<std::vector<float>> scale_, shift_;  // per step: a fused BatchNorm's map (C)
};

}  // namespace bnlab
