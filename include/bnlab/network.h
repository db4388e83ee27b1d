// A feed-forward network: layers run in order on forward and in reverse on backward (a plain
// loop, no autodiff graph). It owns one flat buffer for all parameters, one for their gradients
// (same layout), one for running statistics, and the activations, reserved once for the largest
// batch; forward and backward allocate nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bnlab/layer.h"
#include "bnlab/tensor.h"

namespace bnlab {

class TrainingExecutor;
class InferenceExecutor;

// How an executor runs the layers (the fusion pass, src/nn/fusion.h): Full fuses what gives the
// same bits (BatchNorm+ReLU in training, and the 2x2 max-pool after them where the batch allows;
// a convolution with the BatchNorm, ReLU and max-pool after it in inference); None runs every
// layer on its own, so that activation(i) is each layer's own output (a ReLU's input is then the
// BatchNorm's output, not the ReLU's).
enum class Fusion { Full, None };

struct ExecutorOptions {
  Fusion fusion = Fusion::Full;
};

class Network {
 public:
  // Sets every layer up for `input_shape` (per sample) and allocates parameters and state.
  // Parameters are left zero (call initialize() or load a checkpoint); running statistics start
  // at PyTorch's defaults.
  Network(std::vector<NamedLayer> layers, const Shape& input_shape);

  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;
  Network(Network&&) noexcept;
  Network& operator=(Network&&) noexcept;
  ~Network();

  // Synchronized batch norm over the processes of `comm` (null: back to per-process statistics).
  void set_communicator(Communicator* comm);

  // PyTorch's default initialization, drawn from `seed`; running statistics reset.
  void initialize(uint64_t seed);

  // The training executor: activations and scratch for batches of up to max_batch samples on
  // the current OpenMP thread count, run as `options` says. Idempotent for smaller batches with
  // the same options; other options build the executor anew.
  void reserve(int64_t max_batch, const ExecutorOptions& options = {});
  int64_t capacity() const;
  // Eval-mode batches larger than capacity(): inference keeps no activations and runs a per-sample
  // network in small pieces through two ping-pong buffers, so a batch of 1,000 costs the
  // outputs and two layer outputs of a piece, not all of them.
  void reserve_inference(int64_t max_batch, const ExecutorOptions& options = {});

  // x (n, input...) -> returned pointer to (n, output...), valid until the next forward.
  // Up to capacity() samples keep every activation (backward and activation() work); larger
  // eval-mode batches run through the inference buffers.
  const float* forward(const float* x, int64_t n, const RunContext& ctx);
  // dout (n, output...) for the last forward; parameter gradients accumulate. With dinput
  // (n, input...), the gradient with respect to the input is written there too. layer_done(i),
  // if given, is called as soon as layer i's parameter gradients are complete (last layer first):
  // a data-parallel run starts summing them across processes while backward goes on.
  void backward(const float* dout, int64_t n, float* dinput = nullptr,
                const std::function<void(size_t)>& layer_done = {});
  void zero_grad();

  std::span<float> parameters() { return params_; }
  std::span<float> gradients() { return grads_; }
  std::span<const float> parameters() const { return params_; }
  // Running statistics and counters: what a skipped step must put back as it was.
  std::span<float> buffers() { return buffers_; }
  std::span<int64_t> counters() { return counters_; }

  // Every saved tensor under PyTorch's state_dict name, in PyTorch's order.
  std::vector<TensorView> state_dict();
  // Trainable parameters only, with their gradients' views in a second list of the same order.
  std::vector<TensorView> named_parameters();
  std::vector<TensorView> named_gradients();

  size_t layer_count() const { return layers_.size(); }
  std::span<const NamedLayer> layers() const { return layers_; }
  const Layer& layer(size_t i) const { return *layers_[i].layer; }
  const std::string& layer_name(size_t i) const { return layers_[i].name; }
  const Shape& input_shape() const { return shapes_.front(); }
  const Shape& output_shape() const { return shapes_.back(); }
  const Shape& output_shape(size_t i) const { return shapes_[i + 1]; }
  // Output of layer i from the last forward through the training executor (n, output_shape(i)...);
  // null where that forward did not write it (a BatchNorm and its ReLU fused with the max-pool
  // after them: only the pool's output is written).
  const float* activation(size_t i) const;
  int64_t parameter_count(size_t i) const;
  // Where layer i's parameters (and their gradients) begin in parameters(); -1 if it has none.
  // Its parameters end by parameter_end(i).
  int64_t parameter_offset(size_t i) const;
  int64_t parameter_end(size_t i) const;
  // True if eval-mode outputs of a sample do not depend on the rest of its batch.
  bool eval_is_per_sample() const;

 private:
  struct Slot {
    std::string name;
    TensorDecl decl;
    int64_t offset = 0;  // into the buffer of its role
  };

  std::vector<NamedLayer> layers_;
  std::vector<Shape> shapes_;  // shapes_[0] input, shapes_[i+1] output of layer i (per sample)
  std::vector<std::vector<Slot>> slots_;
  AlignedVector<float> params_, grads_, buffers_;
  std::vector<int64_t> counters_;
  std::unique_ptr<TrainingExecutor> training_;
  std::unique_ptr<InferenceExecutor> inference_;
  int threads_ = 0;
  int64_t layer_capacity_ = 0;  // the batch the layers' scratch was reserved for
  void reserve_layers(int64_t max_batch);
};

}  // namespace bnlab
