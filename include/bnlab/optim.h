// Optimizers over a network's flat parameter buffer, with PyTorch 1.13's update rules
// (torch/optim/*.py, single-tensor paths), and the StepLR schedule. Each keeps its state in flat
// buffers of the same layout as the parameters, allocated once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bnlab/tensor.h"

namespace bnlab {

enum class OptimizerKind { Adadelta, SGD, Adam, AdamW };

OptimizerKind parse_optimizer_kind(const std::string& name);  // "adadelta", "sgd", "adam", "adamw"
const char* optimizer_name(OptimizerKind kind);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::Adadelta;
  double lr = 1.0;
  double weight_decay = 0;  // AdamW's default 1e-2 must be asked for, as bnlab's flags default to 0
  // SGD
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
  // Adadelta
  double rho = 0.9;
  // Adam, AdamW
  double beta1 = 0.9, beta2 = 0.999;
  // Adadelta 1e-6, Adam 1e-8 when left at 0
  double eps = 0;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of params from grads (same layout) at learning rate lr.
  virtual void step(std::span<float> params, std::span<const float> grads, double lr) = 0;
  // The state to checkpoint for an exact resume ("optimizer.<buffer>"), step count included.
  virtual std::vector<TensorView> state() = 0;
  int64_t steps() const { return steps_; }

 protected:
  int64_t steps_ = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& options, int64_t parameter_count);

// lr = base_lr * gamma ^ floor(epoch / step_size), epoch counted from 0 (PyTorch's StepLR).
struct StepLR {
  double base_lr = 1.0;
  double gamma = 0.7;
  int64_t step_size = 1;
  double lr_at(int64_t epoch) const;
};

}  // namespace bnlab
