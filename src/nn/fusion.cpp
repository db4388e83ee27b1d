#include "nn/fusion.h"

#include "layers/layer_kinds.h"

namespace bnlab {
namespace {

bool is(std::span<const NamedLayer> layers, size_t i, LayerKind kind) {
  return i < layers.size() && layers[i].layer->kind() == kind;
}

// A BatchNorm whose eval mode is a fixed per-channel affine map (it has running statistics).
bool is_eval_affine(std::span<const NamedLayer> layers, size_t i) {
  return is(layers, i, LayerKind::BatchNorm) && as<BatchNormLayer>(*layers[i].layer).options().track_running_stats;
}

bool is_maxpool2x2(std::span<const NamedLayer> layers, size_t i) {
  if (!is(layers, i, LayerKind::MaxPool2d)) return false;
  const MaxPool2dOptions& o = as<MaxPool2dLayer>(*layers[i].layer).options();
  return o.kernel_size == 2 && o.stride == 2 && o.padding == 0;
}

}  // namespace

TrainingPlan plan_training(std::span<const NamedLayer> layers, Fusion fusion) {
  const std::vector<bool> none(layers.size(), false);
  TrainingPlan plan{none, none, none};
  if (fusion == Fusion::None) return plan;
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    if (is(layers, i, LayerKind::BatchNorm) && is(layers, i + 1, LayerKind::ReLU)) {
      plan.applies_relu[i] = true;
      plan.absorbed[i + 1] = true;
      plan.may_pool[i] = i > 0 && is_maxpool2x2(layers, i + 2);
    }
  }
  return plan;
}

std::vector<InferenceStep> plan_inference(std::span<const NamedLayer> layers, Fusion fusion) {
  std::vector<InferenceStep> steps;
  for (size_t i = 0; i < layers.size();) {
    InferenceStep step{.layer = i, .next = i + 1};
    if (is(layers, i, LayerKind::Dropout)) {
      step.skip = true;
    } else if (fusion == Fusion::Full && is(layers, i, LayerKind::Conv2d)) {
      size_t next = i + 1;
      if (is_eval_affine(layers, next)) step.affine = next++;
      if (is(layers, next, LayerKind::ReLU)) {
        step.relu = true;
        ++next;
      }
      if (is_maxpool2x2(layers, next) && as<Conv2dLayer>(*layers[i].layer).can_pool()) {
        step.pool = true;
        ++next;
      }
      step.epilogue = next > i + 1;
      step.next = next;
    } else if (fusion == Fusion::Full && is(layers, i, LayerKind::BatchNorm) && is(layers, i + 1, LayerKind::ReLU)) {
      step.relu = true;
      step.next = i + 2;
    }
    steps.push_back(step);
    i = step.next;
  }
  return steps;
}

}  // namespace bnlab
