// bnlab's side of bench/compare: whole-network throughput and batch norm against a copy, through
// the library API, printed as JSON with the keys of bench/torch_bench.py.
//   build/bench/bnlab_bench [--threads N] [--steps 30] [--warmup 3] [--parts train,infer,bn,norms] [--quick]
//
// macs_per_image  the model's forward multiply-adds per image, as `bnlab summary` counts them
// train.<batch>   one training step as the trainer takes it (forward in train mode, NLL loss,
//                 zero_grad, backward, Adadelta step) on synthetic MNIST-shaped data, with BN+ReLU
//                 fused as `bnlab train` runs it (--no-fuse: unfused);
//                 images/s = batch / median step time, warm-up steps excluded
// infer.<batch>   one eval-mode forward pass of a batch (running statistics, no activations kept)
// bn              a BatchNorm2d layer on (N, C, H, W): forward in training mode (batch statistics,
//                 running-statistics update), backward (dx, dweight, dbias), against copying the
//                 same tensor: std::memcpy on one thread, and cut into one block per thread
#include <CLI/CLI.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bnlab/layers.h"
#include "bnlab/loss.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"
#include "bnlab/rng.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"

#include "timing.h"

namespace {

using bench::Clock;
using bench::median;
using bench::median_seconds;
using nlohmann::json;

struct Options {
  int threads = 0;
  std::string model = "seed";
  std::vector<int64_t> train_batches = {64, 256};
  int64_t infer_batch = 1000;
  int steps = 30, warmup = 3;
  int infer_reps = 10, bn_reps = 50;
  std::vector<int64_t> bn_shape = {64, 64, 24, 24};
  uint64_t seed = 1;
  bool fuse = true;  // BN+ReLU fused, as `bnlab train` and `bnlab eval` run the network
  std::vector<std::string> parts = {"train", "infer", "bn", "norms"};
};

bnlab::Network make_network(const Options& o) {
  bnlab::Network net = bnlab::build_network(bnlab::load_spec(o.model), {1, 28, 28});
  net.initialize(o.seed);
  return net;
}

// Pixels normalized as MNIST's ((p/255 - 0.1307) / 0.3081) from a fixed pseudo-random image.
std::vector<float> synthetic_images(int64_t n, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(n * 28 * 28));
  bnlab::Rng rng(seed);
  for (auto& v : x) v = (static_cast<float>(rng.below(256)) / 255.0f - 0.1307f) / 0.3081f;
  return x;
}

json bench_train(const Options& o, int64_t batch) {
  bnlab::Network net = make_network(o);
  net.reserve(batch, {.fusion = o.fuse ? bnlab::Fusion::Full : bnlab::Fusion::None});
  const int64_t classes = bnlab::numel(net.output_shape());
  auto optimizer = bnlab::make_optimizer({.kind = bnlab::OptimizerKind::Adadelta, .lr = 1.0},
                                         static_cast<int64_t>(net.parameters().size()));
  const std::vector<float> x = synthetic_images(batch, o.seed);
  std::vector<uint8_t> labels(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<uint8_t>((i * 7) % classes);
  std::vector<float> dlogp(static_cast<size_t>(batch * classes));
  double loss = 0;
  const double t = median_seconds(o.warmup, o.steps, [&](int step) {
    const uint64_t key = bnlab::derive_key(o.seed, static_cast<uint64_t>(step));
    const float* logp = net.forward(x.data(), batch, {.mode = bnlab::Mode::Train, .random_key = key});
    loss = bnlab::nll_loss(dlogp.data(), logp, labels.data(), batch, classes);
    net.zero_grad();
    net.backward(dlogp.data(), batch);
    optimizer->step(net.parameters(), net.gradients(), 1.0);
  });
  return {{"batch", batch}, {"steps", o.steps}, {"warmup", o.warmup}, {"step_ms", 1e3 * t},
          {"images_per_s", static_cast<double>(batch) / t}, {"final_loss", loss}};
}

json bench_infer(const Options& o) {
  const int64_t batch = o.infer_batch;
  bnlab::Network net = make_network(o);
  net.reserve(64, {.fusion = o.fuse ? bnlab::Fusion::Full : bnlab::Fusion::None});  // what training leaves reserved; the eval batch runs in the inference buffers
  net.reserve_inference(batch);
  const std::vector<float> x = synthetic_images(batch, o.seed + 1);
  float sink = 0;
  const double t = median_seconds(std::max(1, o.warmup / 2), o.infer_reps, [&](int) {
    sink += net.forward(x.data(), batch, {.mode = bnlab::Mode::Eval})[0];
  });
  return {{"batch", batch}, {"reps", o.infer_reps}, {"batch_ms", 1e3 * t},
          {"images_per_s", static_cast<double>(batch) / t}, {"checksum", sink}};
}

// A BatchNorm2d layer driven directly, its state in vectors of our own.
json bench_bn(const Options& o) {
  const int64_t N = o.bn_shape[0], C = o.bn_shape[1], H = o.bn_shape[2], W = o.bn_shape[3];
  const int64_t count = N * C * H * W;
  std::unique_ptr<bnlab::Layer> bn = bnlab::make_batchnorm(bnlab::BatchNormKind::TwoD, {});
  bn->setup({C, H, W});
  const std::vector<bnlab::TensorDecl> decls = bn->declare();
  std::vector<std::vector<float>> data(decls.size()), grad(decls.size());
  std::vector<int64_t> counters(decls.size(), 0);
  std::vector<bnlab::TensorSlot> slots(decls.size());
  for (size_t i = 0; i < decls.size(); ++i) {
    const auto& d = decls[i];
    if (d.role == bnlab::Role::Counter) {
      slots[i].counter = &counters[i];
      continue;
    }
    data[i].assign(static_cast<size_t>(bnlab::numel(d.shape)), d.init == bnlab::Init::Ones ? 1.0f : 0.0f);
    slots[i].data = data[i].data();
    if (d.role == bnlab::Role::Parameter) {
      grad[i].assign(data[i].size(), 0.0f);
      slots[i].grad = grad[i].data();
    }
  }
  bn->bind(slots);
  bn->reset_state();
  bn->reserve(N, bnlab::threads());

  bnlab::AlignedVector<float> x(static_cast<size_t>(count)), y(x.size()), dy(x.size()), dx(x.size());
  bnlab::Rng rng(o.seed);
  for (auto& v : x) v = static_cast<float>(rng.below(1 << 20)) / (1 << 19) - 1.0f;
  for (auto& v : dy) v = static_cast<float>(rng.below(1 << 20)) / (1 << 19) - 1.0f;

  std::vector<double> fwd, bwd, copy1, copyT;
  const int threads = bnlab::threads();
  const size_t bytes = x.size() * sizeof(float);
  for (int i = 0; i < o.warmup + o.bn_reps; ++i) {
    auto t0 = Clock::now();
    bn->forward(y.data(), x.data(), N, {.mode = bnlab::Mode::Train});
    auto t1 = Clock::now();
    bn->backward(dx.data(), dy.data(), x.data(), y.data(), N);
    auto t2 = Clock::now();
    std::memcpy(dx.data(), x.data(), bytes);
    auto t3 = Clock::now();
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t begin = count * t / T, end = count * (t + 1) / T;
      std::memcpy(dx.data() + begin, x.data() + begin, static_cast<size_t>(end - begin) * sizeof(float));
    }
    auto t4 = Clock::now();
    if (i < o.warmup) continue;
    auto ms = [](auto a, auto b) { return 1e3 * std::chrono::duration<double>(b - a).count(); };
    fwd.push_back(ms(t0, t1));
    bwd.push_back(ms(t1, t2));
    copy1.push_back(ms(t2, t3));
    copyT.push_back(ms(t3, t4));
  }
  return {{"shape", o.bn_shape}, {"reps", o.bn_reps}, {"forward_ms", median(fwd)},
          {"backward_ms", median(bwd)}, {"copy_ms", median(copyT)}, {"copy_1thread_ms", median(copy1)},
          {"bytes", bytes}};
}

// The normalization layers at the BN benchmark's shape, each a one-layer network from its spec
// line (the path `bnlab train` runs): training forward and backward (dx and the parameter
// gradients). torch_bench.py times the same list under the same names.
const std::pair<const char*, const char*> kNorms[] = {
    {"BatchNorm2d", "n: BatchNorm2d"},
    {"BatchNorm2d virtual_batch=16", "n: BatchNorm2d virtual_batch=16"},
    {"BatchNorm2d frozen=stats", "n: BatchNorm2d frozen=stats"},
    {"BatchNorm2d renorm=true", "n: BatchNorm2d renorm=true"},
    {"GroupNorm num_groups=8", "n: GroupNorm num_groups=8"},
    {"LayerNorm", "n: LayerNorm"},
    {"InstanceNorm2d", "n: InstanceNorm2d"},
};

json bench_norms(const Options& o) {
  const int64_t N = o.bn_shape[0];
  const bnlab::Shape sample(o.bn_shape.begin() + 1, o.bn_shape.end());
  json out;
  for (const auto& [name, line] : kNorms) {
    bnlab::Network net = bnlab::build_network(bnlab::parse_spec(line, "bench"), sample);
    net.initialize(o.seed);
    net.reserve(N, {.fusion = bnlab::Fusion::None});
    const size_t count = static_cast<size_t>(N * bnlab::numel(sample));
    bnlab::AlignedVector<float> x(count), dy(count), dx(count);
    bnlab::Rng rng(o.seed);
    for (auto& v : x) v = static_cast<float>(rng.below(1 << 20)) / (1 << 19) - 1.0f;
    for (auto& v : dy) v = static_cast<float>(rng.below(1 << 20)) / (1 << 19) - 1.0f;
    std::vector<double> fwd, bwd;
    for (int i = 0; i < o.warmup + o.bn_reps; ++i) {
      net.zero_grad();
      auto t0 = Clock::now();
      net.forward(x.data(), N, {.mode = bnlab::Mode::Train});
      auto t1 = Clock::now();
      net.backward(dy.data(), N, dx.data());
      auto t2 = Clock::now();
      if (i < o.warmup) continue;
      fwd.push_back(1e3 * std::chrono::duration<double>(t1 - t0).count());
      bwd.push_back(1e3 * std::chrono::duration<double>(t2 - t1).count());
    }
    out[name] = {{"forward_ms", median(fwd)}, {"backward_ms", median(bwd)}};
  }
  return out;
}

// The model's multiply-adds per image in a forward pass, in direct-convolution terms (as
// `bnlab summary` counts them: a Winograd convolution counts as the direct one it replaces).
int64_t macs_per_image(const Options& o) {
  const bnlab::Network net = make_network(o);
  int64_t macs = 0;
  for (size_t i = 0; i < net.layer_count(); ++i) macs += net.layer(i).macs_per_sample();
  return macs;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool quick = false;
  CLI::App app{"bnlab's side of bench/compare: throughput and BN vs copy, as JSON"};
  app.add_option("--threads", o.threads, "Threads (0: all cores)")->capture_default_str();
  app.add_option("--model", o.model, "Preset or spec file")->capture_default_str();
  app.add_option("--train-batches", o.train_batches, "Training batch sizes")->capture_default_str();
  app.add_option("--infer-batch", o.infer_batch, "Eval-mode batch size")->capture_default_str();
  app.add_option("--steps", o.steps, "Timed training steps per batch size")->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--infer-reps", o.infer_reps, "Timed eval-mode passes")->capture_default_str();
  app.add_option("--bn-reps", o.bn_reps, "Timed BN forward/backward/copy repetitions")->capture_default_str();
  app.add_option("--bn-shape", o.bn_shape, "N C H W of the BN benchmark")->expected(4)->capture_default_str();
  app.add_flag("--fuse,!--no-fuse", o.fuse, "Fuse BN+ReLU in the network, as bnlab train does")->capture_default_str();
  app.add_option("--parts", o.parts, "What to measure: train, infer, bn, norms")
      ->check(CLI::IsMember({"train", "infer", "bn", "norms"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_flag("--quick", quick, "Few repetitions: checks that it works, numbers are rough");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    o.steps = 5, o.warmup = 2, o.infer_reps = 3, o.bn_reps = 10;
  }
  try {
    bnlab::set_threads(o.threads);
    json out = {{"impl", "bnlab"}, {"threads", bnlab::threads()}, {"model", o.model}, {"fused_bn_relu", o.fuse},
                {"macs_per_image", macs_per_image(o)}};
    auto wanted = [&](const char* part) { return std::find(o.parts.begin(), o.parts.end(), part) != o.parts.end(); };
    if (wanted("train"))
      for (const int64_t b : o.train_batches) out["train"][std::to_string(b)] = bench_train(o, b);
    if (wanted("infer")) out["infer"][std::to_string(o.infer_batch)] = bench_infer(o);
    if (wanted("bn")) out["bn"] = bench_bn(o);
    if (wanted("norms")) out["norms"] = bench_norms(o);
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bnlab_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
