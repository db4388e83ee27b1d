// Nothing allocates inside forward, backward or an optimizer step (DESIGN.md, convention 2): once
// the network is reserved, a training step and an eval pass through the inference path make no
// call to operator new. This binary replaces the global operator new with a counting one.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "bnlab/loss.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "bnlab/train_step.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, std::align_val_t alignment) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t a = static_cast<size_t>(alignment);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace bnlab {
namespace {

// Allocations made while `body` runs.
template <typename F>
long allocations_in(F body) {
  g_allocations = 0;
  g_counting = true;
  body();
  g_counting = false;
  return g_allocations.load();
}

TEST(NoAllocation, TrainingStepsAndInferenceAllocateNothing) {
  set_threads(0);
  // InstanceNorm with running statistics, and without, on top of the presets' GroupNorm and LayerNorm.
  // (A network of 4-channel convolutions allocates in its training step with BatchNorm as well:
  // the seed's layout is kept.)
  const std::string instancenorm =
      "Conv2d out_channels=32 kernel_size=3\nInstanceNorm2d affine=true track_running_stats=true\nReLU\n"
      "Conv2d out_channels=64 kernel_size=3\nInstanceNorm2d\nReLU\nMaxPool2d kernel_size=2\nFlatten\n"
      "Linear out_features=128\nReLU\nLinear out_features=10\nLogSoftmax\n";
  // BatchNorm's variants: ghost batches (4 of the batch's 16), Batch Renormalization, frozen.
  std::string variants = preset_text("seed");
  variants.replace(variants.find("conv1_bn: BatchNorm2d") + 21, 0, " virtual_batch=4");
  variants.replace(variants.find("conv2_bn: BatchNorm2d") + 21, 0, " renorm=true");
  variants.replace(variants.find("fc1_bn:   BatchNorm1d") + 21, 0, " frozen=all");
  for (const char* model :
       {"seed", "seed-bn-after-relu", "seed-nobn", "seed-groupnorm", "seed-layernorm", "instancenorm", "bn-variants"}) {
    const std::string name = model;
    Network net = build_network(name == "instancenorm"  ? parse_spec(instancenorm, name)
                                : name == "bn-variants" ? parse_spec(variants, name)
                                                        : load_spec(model),
                                {1, 28, 28});
    net.initialize(1);
    const int64_t batch = 16, eval_batch = 100;
    net.reserve(batch);
    net.reserve_inference(eval_batch);
    std::vector<float> x(eval_batch * 784);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 251) / 125.0f - 1.0f;
    std::vector<uint8_t> labels(batch);
    for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<uint8_t>(i % 10);
    std::vector<float> dlogp(batch * 10);
    for (const OptimizerKind kind : {OptimizerKind::Adadelta, OptimizerKind::SGD, OptimizerKind::Adam}) {
      std::unique_ptr<Optimizer> opt = make_optimizer({.kind = kind, .lr = 0.01, .momentum = 0.9},
                                                      static_cast<int64_t>(net.parameters().size()));
      auto step = [&](uint64_t key) {
        const float* logp = net.forward(x.data(), batch, {.mode = Mode::Train, .random_key = key});
        nll_loss(dlogp.data(), logp, labels.data(), batch, 10);
        net.zero_grad();
        net.backward(dlogp.data(), batch);
        opt->step(net.parameters(), net.gradients(), 0.01);
      };
      step(1);  // the first step may set up what the OpenMP runtime keeps per team
      EXPECT_EQ(allocations_in([&] { step(2); step(3); }), 0) << model << ": a training step allocated";
    }
    net.forward(x.data(), eval_batch, {.mode = Mode::Eval});
    EXPECT_EQ(allocations_in([&] { net.forward(x.data(), eval_batch, {.mode = Mode::Eval}); }), 0)
        << model << ": an eval pass allocated";
  }
}

// The one training step the trainer and the experiments run (gather, forward, loss, backward,
// the non-finite check, the optimizer) allocates nothing either, on a small synthetic data set.
TEST(NoAllocation, TheTrainStepAllocatesNothing) {
  set_threads(0);
  DataSource data;
  data.train.count = 64;
  data.train.height = data.train.width = 28;
  data.train.images.resize(64 * 784);
  data.train.labels.resize(64);
  for (size_t i = 0; i < data.train.images.size(); ++i) data.train.images[i] = static_cast<uint8_t>(i % 251);
  for (int64_t i = 0; i < 64; ++i) data.train.labels[i] = static_cast<uint8_t>(i % 10);
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  net.initialize(1);
  auto optimizer = make_optimizer({.kind = OptimizerKind::Adadelta, .lr = 1.0}, static_cast<int64_t>(net.parameters().size()));
  TrainStep step(net, data, *optimizer, 16, {.seed = 1, .restore_on_fault = true});
  std::vector<int64_t> indices(16);
  for (int64_t i = 0; i < 16; ++i) indices[i] = i * 3;
  ASSERT_EQ(step.run(indices.data(), 16, 1, 1.0).fault, StepResult::Fault::None);  // OpenMP's first team
  long allocations = allocations_in([&] {
    for (int64_t s = 2; s <= 3; ++s) step.run(indices.data(), 16, s, 1.0);
  });
  EXPECT_EQ(allocations, 0) << "a TrainStep allocated";

  // Accumulating: four micro-batches per step, and the epoch's smaller last batch (10: 4, 4, 2).
  TrainStep accumulating(net, data, *optimizer, 16, {.seed = 1, .restore_on_fault = true, .accumulate = 4});
  ASSERT_EQ(accumulating.run(indices.data(), 16, 1, 1.0).fault, StepResult::Fault::None);
  allocations = allocations_in([&] {
    accumulating.run(indices.data(), 16, 2, 1.0);
    accumulating.run(indices.data(), 10, 3, 1.0);
  });
  EXPECT_EQ(allocations, 0) << "an accumulating TrainStep allocated";
}

// The counter itself must see an allocation, or the test above could pass by counting nothing.
TEST(NoAllocation, TheCounterCountsAnAllocation) {
  EXPECT_GT(allocations_in([] { std::vector<int> v(10); asm volatile("" : : "r"(v.data()) : "memory"); }), 0);
}

}  // namespace
}  // namespace bnlab
