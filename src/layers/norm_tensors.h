// The tensors a normalization layer owns under PyTorch's names (_NormBase and the normalization
// modules, 1.13): weight and bias when affine, running_mean / running_var / num_batches_tracked
// when tracking running statistics. Shared by BatchNorm and the per-sample-group norms.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "bnlab/layer.h"

namespace bnlab {

struct NormTensors {
  TensorSlot weight, bias, running_mean, running_var, num_batches_tracked;

  // param: the affine's shape; channels: the running statistics' length.
  // affine_role: Buffer for an affine that is not trained (a frozen BatchNorm's), which
  // reset_affine then initializes (the network initializes only parameters).
  static std::vector<TensorDecl> declare(const Shape& param, int64_t channels, bool affine, bool track,
                                         Role affine_role = Role::Parameter) {
    std::vector<TensorDecl> decls;
    if (affine) {
      decls.push_back({"weight", param, affine_role, Init::Ones});
      decls.push_back({"bias", param, affine_role, Init::Zeros});
    }
    if (track) {
      decls.push_back({"running_mean", {channels}, Role::Buffer, Init::Zeros});
      decls.push_back({"running_var", {channels}, Role::Buffer, Init::Ones});
      decls.push_back({"num_batches_tracked", {}, Role::Counter, Init::Zeros});
    }
    return decls;
  }

  void bind(std::span<const TensorSlot> slots, bool affine, bool track) {
    size_t i = 0;
    if (affine) {
      weight = slots[i++];
      bias = slots[i++];
    }
    if (track) {
      running_mean = slots[i++];
      running_var = slots[i++];
      num_batches_tracked = slots[i++];
    }
  }

  void reset_affine(int64_t size) {
    std::fill(weight.data, weight.data + size, 1.0f);
    std::fill(bias.data, bias.data + size, 0.0f);
  }

  void reset_running(int64_t channels) {
    std::fill(running_mean.data, running_mean.data + channels, 0.0f);
    std::fill(running_var.data, running_var.data + channels, 1.0f);
    *num_batches_tracked.counter = 0;
  }
};

}  // namespace bnlab
