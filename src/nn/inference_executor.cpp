#include "nn/inference_executor.h"

#include <algorithm>

#include "bnlab/rng.h"
#include "layers/layer_kinds.h"

namespace bnlab {

InferenceExecutor::InferenceExecutor(std::span<NamedLayer> layers, std::span<const Shape> shapes, Fusion fusion,
                                     int64_t max_batch, int64_t piece)
    : layers_(layers), shapes_(shapes), fusion_(fusion), steps_(plan_inference(layers, fusion)),
      capacity_(max_batch), piece_(piece), scale_(steps_.size()), shift_(steps_.size()) {
  int64_t largest = 0;
  for (size_t i = 0; i < layers_.size(); ++i) largest = std::max(largest, piece * numel(shapes_[i + 1]));
  a_.assign(largest, 0.0f);
  b_.assign(largest, 0.0f);
  out_.assign(max_batch * numel(shapes_.back()), 0.0f);
  for (size_t s = 0; s < steps_.size(); ++s) {
    if (steps_[s].affine == 0) continue;
    const int64_t channels = shapes_[steps_[s].affine + 1][0];
    scale_[s].assign(channels, 0.0f);
    shift_[s].assign(channels, 0.0f);
  }
}

const float* InferenceExecutor::run(const float* x, int64_t n, const RunContext& ctx) {
  // The running statistics may have changed since the last call: the maps are taken anew.
  for (size_t s = 0; s < steps_.size(); ++s) {
    if (steps_[s].affine) as<BatchNormLayer>(*layers_[steps_[s].affine].layer).eval_affine(scale_[s].data(), shift_[s].data());
  }
  const int64_t in_size = numel(shapes_.front()), out_size = numel(shapes_.back());
  for (int64_t begin = 0; begin < n; begin += piece_) {
    const int64_t len = std::min(piece_, n - begin);
    const float* in = x + begin * in_size;
    for (size_t s = 0; s < steps_.size(); ++s) {
      const InferenceStep& step = steps_[s];
      if (step.skip) continue;
      Layer& layer = *layers_[step.layer].layer;
      float* out = layer.is_view() ? const_cast<float*>(in) : in == a_.data() ? b_.data() : a_.data();
      RunContext layer_ctx = ctx;
      layer_ctx.random_key = derive_key(ctx.random_key, step.layer);
      layer_ctx.backward_follows = false;
      if (step.epilogue) {
        const bool affine = step.affine != 0;
        as<Conv2dLayer>(layer).forward_epilogue(out, in, len, {.scale = affine ? scale_[s].data() : nullptr,
                                                                 .shift = affine ? shift_[s].data() : nullptr,
                                                                 .relu = step.relu, .maxpool2x2 = step.pool});
      } else if (step.relu) {
        as<BatchNormLayer>(layer).forward_relu(out, in, len, layer_ctx);
      } else {
        layer.forward(out, in, len, layer_ctx);
      }
      in = out;
    }
    std::copy(in, in + len * out_size, out_.begin() + begin * out_size);
  }
  return out_.data();
}

}  // namespace bnlab
