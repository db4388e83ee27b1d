// The fusion pass: how an executor runs a network's layers, matched by kind (LayerKind), decided
// once when the executor is built. Every fusion gives the bits of the layers it replaces run one
// by one (tests: Network.FusedInferenceGivesTheLayerByLayerBits, FusedBatchNormRelu...).
//   training:  BatchNorm -> ReLU               one pass each way (the ReLU keeps no buffer)
//              BatchNorm -> ReLU -> 2x2 MaxPool  the same passes, the BN output never written, for
//                                              each batch the BatchNorm accepts (can_fuse_pool)
//   inference: Conv2d -> [BatchNorm] -> [ReLU] -> [2x2 MaxPool]   in the convolution's output loop
//              BatchNorm -> ReLU               one pass;  Dropout skipped (the identity in eval)
// Fusion::None plans every layer on its own, for whatever reads each layer's own output.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "bnlab/layer.h"
#include "bnlab/network.h"

namespace bnlab {

struct TrainingPlan {
  std::vector<bool> applies_relu;  // layer i (a BatchNorm) applies the ReLU after it
  std::vector<bool> absorbed;      // layer i (that ReLU) is applied by the layer before it
  // Layer i (a BatchNorm applying its ReLU) may also apply the 2x2, stride-2 MaxPool2d at i + 2,
  // batch by batch (not the first layer: its input gradient may be skipped, which the fused
  // backward does not do).
  std::vector<bool> may_pool;
};

TrainingPlan plan_training(std::span<const NamedLayer> layers, Fusion fusion);

// One step of an inference pass: layer `layer` runs and covers the layers up to `next`.
struct InferenceStep {
  size_t layer = 0, next = 0;
  bool skip = false;      // the identity in eval (Dropout): nothing runs
  bool epilogue = false;  // a Conv2d applying the rest in its output loop
  size_t affine = 0;      // with epilogue: the BatchNorm whose eval map it applies (0: none)
  bool relu = false;      // epilogue, or a BatchNorm's forward_relu
  bool pool = false;      // epilogue: the 2x2, stride-2 max-pool
};

std::vector<InferenceStep> plan_inference(std::span<const NamedLayer> layers, Fusion fusion);

}  // namespace bnlab
