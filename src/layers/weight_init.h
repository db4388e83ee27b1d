// The weight and bias declarations of Conv2d and Linear under their WeightInit (layers.h), and
// the spec keys that write it back: one rule for both layers.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "bnlab/layers.h"
#include "layers/spec_values.h"

namespace bnlab {

inline std::vector<TensorDecl> weight_and_bias(const Shape& weight, bool bias, int64_t fan_in, WeightInit init,
                                               double gain) {
  const Init w = init == WeightInit::Default ? Init::FanInUniform
                 : init == WeightInit::Zeros ? Init::Zeros
                                             : Init::KaimingNormal;
  const Init b = init == WeightInit::Default ? Init::FanInUniform : Init::Zeros;
  std::vector<TensorDecl> decls = {{"weight", weight, Role::Parameter, w, fan_in, gain}};
  if (bias) decls.push_back({"bias", {weight[0]}, Role::Parameter, b, fan_in});
  return decls;
}

inline std::string weight_init_name(WeightInit init) {
  switch (init) {
    case WeightInit::Default: return "default";
    case WeightInit::Zeros: return "zeros";
    case WeightInit::KaimingNormal: return "kaiming_normal";
  }
  return "default";
}

// `init` and `init_gain` when they differ from the defaults.
inline void add_init_settings(std::vector<std::pair<std::string, std::string>>& s, WeightInit init, double gain) {
  if (init != WeightInit::Default) s.emplace_back("init", weight_init_name(init));
  if (init == WeightInit::KaimingNormal && gain != 1.0) s.emplace_back("init_gain", spec_value(gain));
}

}  // namespace bnlab
