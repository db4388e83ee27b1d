// libtorch's side of bench/compare: the tutorial's network in PyTorch's C++ API (Debian's
// libtorch-dev 1.13), the library a C++ user would pick instead of bnlab. The same work as
// bench/torch_bench.py's `bench` and the same JSON keys (without its "norms"):
//   build/bench/libtorch_bench [--threads N] [--steps 30] [--warmup 3] [--infer-reps 10] [--bn-reps 50] [--quick]
//   build/bench/libtorch_bench --check-adadelta    # the update's parameters after 3 steps, as JSON
//
// train.<batch>   forward in train mode, NLL loss, zero_grad, backward, Adadelta step (lr 1.0,
//                 rho 0.9, eps 1e-6, torch.optim.Adadelta's defaults); images/s = batch / median
//                 step time, warm-up steps excluded
// infer.<batch>   eval mode under torch::InferenceMode
// bn              torch::batch_norm in training mode with autograd recording, backward through
//                 autograd, against dst.copy_(src) and clone() of the same tensor
//
// libtorch 1.13's C++ API has no Adadelta; adadelta_step is torch.optim.Adadelta's single-tensor
// update (its default, foreach=False) in the same tensor operations, so that the work is the
// same (--check-adadelta and bench/README.md show how it was checked against Python's).
//
// Threads as torch_bench.py sets them: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS before the
// libraries start (OpenBLAS reads its variable when it is loaded, so the process re-executes
// itself once with them set), then torch::set_num_threads. The inter-op pool is left alone, as
// Python leaves it: eager execution does not use it.
#include <sched.h>
#include <unistd.h>

#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "timing.h"

namespace {

using bench::Clock;
using bench::median;
using bench::median_seconds;
using nlohmann::json;

struct Options {
  int threads = 0;
  std::vector<int64_t> train_batches = {64, 256};
  int64_t infer_batch = 1000;
  int steps = 30, warmup = 3;
  int infer_reps = 10, bn_reps = 50;
  std::vector<int64_t> bn_shape = {64, 64, 24, 24};
  uint64_t seed = 1;
};

// The tutorial's network, torch_bench.py's Net (bnlab's `seed` preset).
struct NetImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 32, 3).stride(1)};
  torch::nn::BatchNorm2d conv1_bn{32};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(32, 64, 3).stride(1)};
  torch::nn::BatchNorm2d conv2_bn{64};
  torch::nn::Dropout dropout1{0.25};
  torch::nn::Linear fc1{9216, 128};
  torch::nn::BatchNorm1d fc1_bn{128};
  torch::nn::Linear fc2{128, 10};

  NetImpl() {
    register_module("conv1", conv1);
    register_module("conv1_bn", conv1_bn);
    register_module("conv2", conv2);
    register_module("conv2_bn", conv2_bn);
    register_module("dropout1", dropout1);
    register_module("fc1", fc1);
    register_module("fc1_bn", fc1_bn);
    register_module("fc2", fc2);
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(conv1_bn(conv1(x)));
    x = torch::relu(conv2_bn(conv2(x)));
    x = torch::max_pool2d(x, 2);
    x = dropout1(x);
    x = torch::flatten(x, 1);
    x = torch::relu(fc1_bn(fc1(x)));
    return torch::log_softmax(fc2(x), 1);
  }
};
TORCH_MODULE(Net);

// torch.optim.Adadelta (PyTorch 1.13, _single_tensor_adadelta, weight_decay 0, maximize off).
class Adadelta {
 public:
  Adadelta(std::vector<torch::Tensor> params, double lr = 1.0, double rho = 0.9, double eps = 1e-6)
      : params_(std::move(params)), lr_(lr), rho_(rho), eps_(eps) {
    for (const auto& p : params_) {
      square_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      acc_delta_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    }
  }

  void step() {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      torch::Tensor& p = params_[i];
      const torch::Tensor& grad = p.grad();
      if (!grad.defined()) continue;  // as Python's, which skips parameters without a gradient
      torch::Tensor& square_avg = square_avg_[i];
      torch::Tensor& acc_delta = acc_delta_[i];
      square_avg.mul_(rho_).addcmul_(grad, grad, 1 - rho_);
      const torch::Tensor std_dev = square_avg.add(eps_).sqrt_();
      const torch::Tensor delta = acc_delta.add(eps_).sqrt_().div_(std_dev).mul_(grad);
      acc_delta.mul_(rho_).addcmul_(delta, delta, 1 - rho_);
      p.add_(delta, -lr_);
    }
  }

 private:
  std::vector<torch::Tensor> params_, square_avg_, acc_delta_;
  double lr_, rho_, eps_;
};

// torch_bench.py's synthetic_images: uint8 pixels from a generator seeded with `seed`, as floats
// (n, 1, 28, 28) normalized as MNIST's. The same ATen generator, so the same images as Python's.
torch::Tensor synthetic_images(int64_t n, uint64_t seed) {
  const at::Generator g = at::detail::createCPUGenerator(seed);
  const torch::Tensor pixels = torch::randint(0, 256, {n, 28, 28}, g, torch::kUInt8);
  return pixels.unsqueeze(1).to(torch::kFloat).div_(255).sub_(0.1307).div_(0.3081);
}

json bench_train(const Options& o, int64_t batch) {
  torch::manual_seed(o.seed);
  Net model;
  model->train();
  Adadelta opt(model->parameters(), 1.0);
  const torch::Tensor x = synthetic_images(batch, o.seed);
  const torch::Tensor y = (torch::arange(batch) * 7) % 10;
  double loss = 0;
  const double t = median_seconds(o.warmup, o.steps, [&](int) {
    model->zero_grad();  // set_to_none = false, as Python 1.13's optimizer.zero_grad()
    const torch::Tensor l = torch::nll_loss(model->forward(x), y);
    l.backward();
    opt.step();
    loss = l.item<double>();
  });
  return {{"batch", batch}, {"steps", o.steps}, {"warmup", o.warmup}, {"step_ms", 1e3 * t},
          {"images_per_s", static_cast<double>(batch) / t}, {"final_loss", loss}};
}

json bench_infer(const Options& o) {
  const int64_t batch = o.infer_batch;
  torch::manual_seed(o.seed);
  Net model;
  model->eval();
  const torch::Tensor x = synthetic_images(batch, o.seed + 1);
  double sink = 0;
  const double t = median_seconds(std::max(1, o.warmup / 2), o.infer_reps, [&](int) {
    torch::InferenceMode guard;
    sink += model->forward(x)[0][0].item<double>();
  });
  return {{"batch", batch}, {"reps", o.infer_reps}, {"batch_ms", 1e3 * t},
          {"images_per_s", static_cast<double>(batch) / t}, {"checksum", sink}};
}

json bench_bn(const Options& o) {
  const int64_t N = o.bn_shape[0], C = o.bn_shape[1], H = o.bn_shape[2], W = o.bn_shape[3];
  const at::Generator g = at::detail::createCPUGenerator(o.seed);
  torch::Tensor x = (torch::rand({N, C, H, W}, g) * 2 - 1).requires_grad_();
  const torch::Tensor dy = torch::rand({N, C, H, W}, g) * 2 - 1;
  torch::Tensor weight = torch::ones({C}, torch::requires_grad());
  torch::Tensor bias = torch::zeros({C}, torch::requires_grad());
  torch::Tensor running_mean = torch::zeros({C}), running_var = torch::ones({C});
  torch::Tensor dst = torch::empty_like(dy);
  std::vector<double> fwd, bwd, copy, clone;
  auto ms = [](Clock::time_point a, Clock::time_point b) { return 1e3 * std::chrono::duration<double>(b - a).count(); };
  for (int i = 0; i < o.warmup + o.bn_reps; ++i) {
    x.mutable_grad().reset();
    weight.mutable_grad().reset();
    bias.mutable_grad().reset();
    const auto t0 = Clock::now();
    torch::Tensor y = torch::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/true,
                                        /*momentum=*/0.1, /*eps=*/1e-5, /*cudnn_enabled=*/true);
    const auto t1 = Clock::now();
    y.backward(dy);
    const auto t2 = Clock::now();
    dst.copy_(dy);
    const auto t3 = Clock::now();
    torch::Tensor c = dy.clone();
    const auto t4 = Clock::now();
    c.reset();
    y.reset();
    if (i < o.warmup) continue;
    fwd.push_back(ms(t0, t1));
    bwd.push_back(ms(t1, t2));
    copy.push_back(ms(t2, t3));
    clone.push_back(ms(t3, t4));
  }
  return {{"shape", o.bn_shape}, {"reps", o.bn_reps}, {"forward_ms", median(fwd)}, {"backward_ms", median(bwd)},
          {"copy_ms", median(copy)}, {"clone_ms", median(clone)},
          {"bytes", x.numel() * static_cast<int64_t>(x.element_size())}};
}

// The BLAS and oneDNN libraries mapped into this process (after a matrix product loaded them).
std::vector<std::string> loaded_libraries() {
  std::set<std::string> libs;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string base = path.substr(path.rfind('/') + 1);
    if (base.find("blas") != std::string::npos || base.find("dnnl") != std::string::npos ||
        base.find("mkl") != std::string::npos) {
      char real[4096];
      libs.insert(realpath(path.c_str(), real) ? std::string(real) : path);
    }
  }
  return {libs.begin(), libs.end()};
}

json config() {
  const torch::Tensor a = torch::ones({256, 256});
  (void)torch::mm(a, a).sum().item<float>();  // loads the BLAS
  std::string blas_info;
  std::istringstream show(at::show_config());
  for (std::string item; std::getline(show, item, ',');) {
    const size_t at = item.find("BLAS_INFO=");
    if (at != std::string::npos) blas_info = item.substr(at + 10);
  }
  json env;
  for (const char* k : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE"}) {
    const char* v = std::getenv(k);
    env[k] = v ? v : "";
  }
  return {{"torch", TORCH_VERSION},
          {"api", "libtorch C++"},
          {"threads", at::get_num_threads()},
          {"interop_threads", at::get_num_interop_threads()},
          {"mkldnn_available", at::hasMKLDNN()},
          {"blas_info", blas_info},
          {"blas_libraries", loaded_libraries()},
          {"env", env}};
}

// Three Adadelta steps on a 5x7 parameter from torch::manual_seed(seed), with gradients
// torch::randn drawn after it: Python's torch.manual_seed(seed); p = torch.randn(5, 7); and
// torch.optim.Adadelta([p], lr=1.0) stepped on torch.randn(5, 7) gradients must give the same
// floats (bench/README.md has the Python side).
json check_adadelta(uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor p = torch::randn({5, 7}).requires_grad_();
  Adadelta opt({p}, 1.0);
  for (int step = 0; step < 3; ++step) {
    p.mutable_grad() = torch::randn({5, 7});
    opt.step();
  }
  const torch::Tensor flat = p.detach().flatten().contiguous();
  return {{"seed", seed}, {"param", std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel())}};
}

// OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = threads, as torch_bench.py sets them before importing
// torch. OpenBLAS reads its variable when the library is loaded, before main: re-execute once.
void set_thread_environment(int threads, char** argv) {
  const std::string n = std::to_string(threads);
  bool same = true;
  for (const char* k : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}) {
    const char* v = std::getenv(k);
    if (!v || n != v) {
      setenv(k, n.c_str(), 1);
      same = false;
    }
  }
  if (same) return;
  execv("/proc/self/exe", argv);
  std::perror("libtorch_bench: execv /proc/self/exe");  // then run on, with torch::set_num_threads only
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool quick = false, check = false;
  cpu_set_t cpus;
  o.threads = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  CLI::App app{"libtorch's side of bench/compare: throughput and BN vs copy, as JSON"};
  app.add_option("--threads", o.threads, "Threads (default: the CPUs this process may run on)")->capture_default_str();
  app.add_option("--train-batches", o.train_batches, "Training batch sizes")->capture_default_str();
  app.add_option("--infer-batch", o.infer_batch, "Eval-mode batch size")->capture_default_str();
  app.add_option("--steps", o.steps, "Timed training steps per batch size")->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--infer-reps", o.infer_reps, "Timed eval-mode passes")->capture_default_str();
  app.add_option("--bn-reps", o.bn_reps, "Timed BN forward/backward/copy repetitions")->capture_default_str();
  app.add_option("--bn-shape", o.bn_shape, "N C H W of the BN benchmark")->expected(4)->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the weights and the synthetic data")->capture_default_str();
  app.add_flag("--quick", quick, "Few repetitions: checks that it works, numbers are rough");
  app.add_flag("--check-adadelta", check, "Print the parameter after 3 Adadelta steps (see bench/README.md)");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    o.steps = 5, o.warmup = 2, o.infer_reps = 3, o.bn_reps = 10;
  }
  if (o.threads < 1) o.threads = 1;
  try {
    if (check) {
      std::printf("%s\n", check_adadelta(o.seed).dump(2).c_str());
      return 0;
    }
    set_thread_environment(o.threads, argv);
    torch::set_num_threads(o.threads);
    json out = {{"impl", "libtorch"}, {"threads", at::get_num_threads()}, {"model", "seed"}};
    for (const int64_t b : o.train_batches) out["train"][std::to_string(b)] = bench_train(o, b);
    out["infer"][std::to_string(o.infer_batch)] = bench_infer(o);
    out["bn"] = bench_bn(o);
    out["config"] = config();
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libtorch_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
