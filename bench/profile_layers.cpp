// Where a training step of a network spends its time, layer by layer (median of repeated steps);
// with `eval`, where an eval-mode forward pass does (BN+ReLU fused in both, as bnlab runs them).
//   build/bench/profile_layers [model] [batch] [steps] [train|eval]   (or --model, --batch, ...)
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bnlab/layer.h"
#include "bnlab/loss.h"
#include "bnlab/network.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"

namespace {
void profile(const std::string& model, int64_t batch, int steps, bool eval) {
  using Clock = std::chrono::steady_clock;
  bnlab::Network net = bnlab::build_network(bnlab::load_spec(model), {1, 28, 28});
  net.initialize(1);
  net.reserve(batch);
  std::vector<float> x(batch * 784);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  std::vector<uint8_t> labels(batch);
  for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<uint8_t>(i % 10);
  std::vector<float> dlogp(batch * 10);
  const size_t L = net.layer_count();
  std::vector<std::vector<double>> fwd(L), bwd(L);
  std::vector<double> total;
  for (int s = 0; s < steps + 3; ++s) {
    const auto t0 = Clock::now();
    const bnlab::Mode mode = eval ? bnlab::Mode::Eval : bnlab::Mode::Train;
    const float* logp = net.forward(x.data(), batch, {.mode = mode, .random_key = static_cast<uint64_t>(s)});
    if (!eval) {
      bnlab::nll_loss(dlogp.data(), logp, labels.data(), batch, 10);
      net.zero_grad();
      net.backward(dlogp.data(), batch);
    }
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s >= 3) total.push_back(dt);
  }
  // Per-layer split: time each layer alone on the activations of one more forward, run with every
  // layer's own output kept (Fusion::None: a fused BN+ReLU+pool writes only the pool's output).
  net.reserve(batch, {.fusion = bnlab::Fusion::None});
  net.forward(x.data(), batch, {.mode = eval ? bnlab::Mode::Eval : bnlab::Mode::Train, .random_key = 1});
  for (size_t i = 0; i < L; ++i) {
    auto& layer = const_cast<bnlab::Layer&>(net.layer(i));
    const float* in = i == 0 ? x.data() : net.activation(i - 1);
    std::vector<float> out(batch * bnlab::numel(net.output_shape(i)));
    std::vector<float> dx(batch * bnlab::numel(i == 0 ? net.input_shape() : net.output_shape(i - 1)));
    std::vector<float> dy(out.size(), 0.01f);
    for (int s = 0; s < steps; ++s) {
      auto t0 = Clock::now();
      layer.forward(out.data(), in, batch, {.mode = eval ? bnlab::Mode::Eval : bnlab::Mode::Train, .random_key = 1});
      fwd[i].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      if (eval) {
        bwd[i].push_back(0);
        continue;
      }
      t0 = Clock::now();
      layer.backward(i == 0 ? nullptr : dx.data(), dy.data(), in, out.data(), batch);
      bwd[i].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("%s batch %lld, %d threads: %s %.2f ms (%.0f images/s)\n", model.c_str(), static_cast<long long>(batch),
              bnlab::threads(), eval ? "eval forward" : "training step", 1e3 * median(total), batch / median(total));
  for (size_t i = 0; i < L; ++i) {
    std::printf("  %-10s %-12s fwd %7.3f ms  bwd %7.3f ms\n", net.layer_name(i).c_str(),
                std::string(net.layer(i).type()).c_str(), 1e3 * median(fwd[i]), 1e3 * median(bwd[i]));
  }
}
}  // namespace

int main(int argc, char** argv) {
  std::string model = "seed", mode = "train";
  int64_t batch = 64;
  int steps = 30, threads = 0;
  CLI::App app{"Where a training step (or an eval-mode pass) spends its time, layer by layer"};
  app.add_option("model,--model", model, "Preset or spec file")->capture_default_str();
  app.add_option("batch,--batch", batch, "Batch size")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  app.add_option("steps,--steps", steps, "Timed steps")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("mode,--mode", mode, "train or eval")->check(CLI::IsMember({"train", "eval"}))->capture_default_str();
  app.add_option("--threads", threads, "Threads (0: all cores)")->check(CLI::Range(0, 4096))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    bnlab::set_threads(threads);
    profile(model, batch, steps, mode == "eval");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "profile_layers: %s\n", e.what());
    return 2;
  }
  return 0;
}
