// The layer interface: bookkeeping only (shapes, parameter views, saved state). The arithmetic
// lives in src/kernels. A Network calls, in order: setup -> declare -> bind -> reserve, then
// forward in layer order and backward in reverse.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bnlab/tensor.h"

namespace bnlab {

class Communicator;

enum class Mode { Train, Eval };

// What a layer computes, for the passes that rewrite a network (src/nn/fusion.cpp, fold.cpp):
// they match kinds, so that no layer needs a hook per fusion.
enum class LayerKind { Conv2d, Linear, BatchNorm, ReLU, MaxPool2d, Dropout, Flatten, LogSoftmax, Sigmoid, Tanh, Residual,
                       GroupNorm, LayerNorm, InstanceNorm, ChannelNoise, AvgPool2d, GlobalAvgPool, Scale, Bias };

// What a layer owns in the network's flat buffers, under PyTorch's state_dict names.
enum class Role {
  Parameter,  // trained: a slice of the parameter buffer, with a gradient of the same layout
  Buffer,     // saved but not trained (running statistics), float
  Counter,    // saved int64 (num_batches_tracked)
};

enum class Init {
  None,        // filled by the layer itself (buffers)
  FanInUniform,  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's kaiming_uniform_(a=sqrt(5))
                 // for weights and its bias rule, which give the same bound
  Ones,
  Zeros,
  KaimingNormal,  // N(0, gain^2 * 2 / fan_in): He et al. 2015, PyTorch's kaiming_normal_ (fan_in,
                  // ReLU gain) times `gain` (Fixup scales its branches' convolutions down)
};

struct TensorDecl {
  std::string name;  // "weight", "running_mean", ...
  Shape shape;
  Role role = Role::Parameter;
  Init init = Init::None;
  int64_t fan_in = 0;  // for Init::FanInUniform and Init::KaimingNormal
  double gain = 1.0;   // for Init::KaimingNormal
};

// Where a declared tensor lives once the network has allocated it.
struct TensorSlot {
  float* data = nullptr;     // Parameter and Buffer
  float* grad = nullptr;     // Parameter only
  int64_t* counter = nullptr;  // Counter only
};

// Whether Dropout drops in training mode. Off runs training-mode statistics without it: the
// recalibration of BN after dropout's variance shift (Li et al. 2019), src/train/recalibrate.cpp.
enum class DropoutMode { AsMode, Off };

// Per-call facts a layer may need: train or eval, the random key of this step, whether a
// backward pass may follow (inference says it will not: nothing need be saved for it), and
// whether Dropout applies in training mode.
struct RunContext {
  Mode mode = Mode::Train;
  uint64_t random_key = 0;
  bool backward_follows = true;
  DropoutMode dropout = DropoutMode::AsMode;
};

class Layer;

// A layer under its state_dict prefix: "conv1", or the index "3" as in nn.Sequential.
struct NamedLayer {
  std::string name;
  std::unique_ptr<Layer> layer;
};

class Layer {
 public:
  virtual ~Layer() = default;

  virtual std::string_view type() const = 0;  // PyTorch's class name: "Conv2d", "BatchNorm2d"
  virtual LayerKind kind() const = 0;

  // Checks the per-sample input shape and returns the per-sample output shape.
  // Throws Error naming the field on an impossible shape.
  virtual Shape setup(const Shape& input) = 0;

  virtual std::vector<TensorDecl> declare() const { return {}; }
  virtual void bind(std::span<const TensorSlot> /*slots, in declare() order*/) {}
  // Resets non-parameter state (running statistics, counters) to its initial value.
  virtual void reset_state() {}

  // Scratch for batches of up to max_batch samples on `threads` threads; the only allocation.
  virtual void reserve(int64_t /*max_batch*/, int /*threads*/) {}

  // A view layer's output is its input (Flatten): the network aliases the buffers.
  virtual bool is_view() const { return false; }

  // True if, in eval mode, one sample's output depends on the others in the batch (BatchNorm
  // without running statistics). Otherwise a large eval batch may be run in smaller pieces.
  virtual bool eval_mixes_samples() const { return false; }

  // Synchronized batch norm: statistics over the batches of all processes of `comm` (null: this
  // process only). Layers without batch statistics ignore it.
  virtual void set_communicator(Communicator* /*comm*/) {}

  // y (n, out...) from x (n, in...).
  virtual void forward(float* y, const float* x, int64_t n, const RunContext& ctx) = 0;

  // dx (n, in...) from dy (n, out...), given the x and y of the last forward; dx may be null
  // (first layer). Parameter gradients accumulate into their slots.
  virtual void backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) = 0;

  // The layers a block runs inside it (Residual's body, then its shortcut's layers); empty for a
  // plain layer. children().first(shortcut_begin()) is the body.
  virtual std::span<const NamedLayer> children() const { return {}; }
  virtual size_t shortcut_begin() const { return children().size(); }

  // The spec format's settings that rebuild this layer (`out_channels=32`, ...): with type(),
  // a spec line (spec_text(const Network&)); the keys are docs/guide.md's.
  virtual std::vector<std::pair<std::string, std::string>> spec_settings() const { return {}; }

  // Multiply-adds per sample, for summaries and benchmarks.
  virtual int64_t macs_per_sample() const { return 0; }

  // One line of settings for summaries: "32, kernel_size=3, stride=1".
  virtual std::string describe() const { return {}; }
};

}  // namespace bnlab
