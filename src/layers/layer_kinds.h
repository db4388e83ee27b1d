// What the network's rewrite passes (src/nn/fusion.cpp, src/nn/fold.cpp) need of particular
// layer kinds, beyond the Layer interface. A pass matches Layer::kind() and then casts with
// as<...>(): the fusions live in the passes, the layers only offer the pieces they are made of.
#pragma once

#include <optional>

#include "bnlab/layer.h"
#include "bnlab/layers.h"
#include "kernels/conv.h"

namespace bnlab {

// BatchNorm1d/2d (LayerKind::BatchNorm).
class BatchNormLayer : public Layer {
 public:
  LayerKind kind() const final { return LayerKind::BatchNorm; }
  virtual const BatchNormOptions& options() const = 0;
  // Eval mode with running statistics as y = x * scale + shift per channel: (C) each, in the
  // float arithmetic of the eval forward (so that a fused epilogue gives its bits).
  virtual void eval_affine(float* scale, float* shift) const = 0;
  // forward and backward with the ReLU that follows applied in the same pass; y is after it.
  virtual void forward_relu(float* y, const float* x, int64_t n, const RunContext& ctx) = 0;
  virtual void backward_relu(float* dx, const float* dy, const float* x, const float* y, int64_t n) = 0;
  // With the 2x2, stride-2 max-pool after that ReLU in the same passes as well, the BN output never
  // stored (kernels/batchnorm/batchnorm.h): y and argmax are the pool's output and argmax (argmax
  // may be null), dy is the pooled gradient. Only for a batch that can_fuse_pool accepts (training
  // on one process with the plain batch statistics, planes small enough); the same bits as the
  // three layers one by one.
  virtual bool can_fuse_pool(const RunContext& ctx) const = 0;
  virtual void forward_relu_pool(float* y, int32_t* argmax, const float* x, int64_t n, const RunContext& ctx) = 0;
  virtual void backward_relu_pool(float* dx, const float* dy, const int32_t* argmax, const float* x, int64_t n) = 0;
  // The running statistics' momentum from now on (none: the cumulative average), for the
  // recalibration (src/train/recalibrate.cpp), which sets it for its passes and puts it back.
  virtual void set_momentum(std::optional<double> momentum) = 0;
};

// Conv2d (LayerKind::Conv2d).
class Conv2dLayer : public Layer {
 public:
  LayerKind kind() const final { return LayerKind::Conv2d; }
  // Whether the epilogue may include a 2x2, stride-2 max-pool at this layer's geometry.
  virtual bool can_pool() const = 0;
  // Eval-mode forward with the epilogue applied inside the output loop (the pooled shape if it
  // pools): the bits of the layers it replaces run one by one.
  virtual void forward_epilogue(float* y, const float* x, int64_t n, const kernels::ConvEpilogue<float>& e) = 0;
};

// MaxPool2d (LayerKind::MaxPool2d).
class MaxPool2dLayer : public Layer {
 public:
  LayerKind kind() const final { return LayerKind::MaxPool2d; }
  virtual const MaxPool2dOptions& options() const = 0;
  // Where forward keeps each window's argmax for backward (N, C, Ho, Wo), for a fused layer
  // before it that pools in its place (BatchNormLayer::forward_relu_pool).
  virtual int32_t* argmax() = 0;
};

// The layer of kind T::kind() as T; call only after checking kind().
template <typename T>
T& as(Layer& layer) { return static_cast<T&>(layer); }
template <typename T>
const T& as(const Layer& layer) { return static_cast<const T&>(layer); }

}  // namespace bnlab
