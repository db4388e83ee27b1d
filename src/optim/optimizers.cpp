// The update rules, written as PyTorch 1.13 writes them (tensor ops in float, scalars rounded
// to float), so that one step matches torch.optim to float rounding. Elementwise, so a static
// split over threads gives the same bits for any thread count. Compiled with
// "-ffp-contract=off;-fno-math-errno" (src/CMakeLists.txt): without contraction each operation
// rounds on its own, as PyTorch's tensor ops, in every instruction-set clone (one Adadelta and
// one SGD step are checked against PyTorch in tests/pytorch_parity_test.cpp); without errno the
// square roots vectorize.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "bnlab/error.h"
#include "bnlab/optim.h"
#include "kernels/x86/multiversion.h"

namespace bnlab {
namespace {

// Adadelta (Zeiler 2012), torch.optim.Adadelta:
//   g += wd*p; v = rho*v + (1-rho)*g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
//   u = rho*u + (1-rho)*delta^2; p -= lr*delta
struct AdadeltaScalars {
  float rho, one_minus_rho, eps, wd, neg_lr;
};

// n elements of the update. Raw restrict pointers, so that it vectorizes (through the members'
// std::vectors the compiler must assume p aliases them), compiled per instruction set; this file
// is compiled without contraction, so each operation rounds on its own, as PyTorch's tensor ops,
// on every instruction set.
BNLAB_INLINE void adadelta_update_body(float* __restrict p, const float* __restrict g, float* __restrict square_avg,
                     float* __restrict acc_delta, int64_t n, AdadeltaScalars k) {
  for (int64_t i = 0; i < n; ++i) {
    const float decayed = g[i] + k.wd * p[i];  // both sides computed: a select, not a branch
    const float grad = k.wd != 0 ? decayed : g[i];
    square_avg[i] = square_avg[i] * k.rho + k.one_minus_rho * grad * grad;
    const float std = std::sqrt(square_avg[i] + k.eps);
    const float delta = std::sqrt(acc_delta[i] + k.eps) / std * grad;
    acc_delta[i] = acc_delta[i] * k.rho + k.one_minus_rho * delta * delta;
    p[i] += k.neg_lr * delta;
  }
}
BNLAB_MULTIVERSION(void, adadelta_update, (float* __restrict p, const float* __restrict g, float* __restrict square_avg, float* __restrict acc_delta, int64_t n, AdadeltaScalars k),
                   (p, g, square_avg, acc_delta, n, k), adadelta_update_body)

class Adadelta final : public Optimizer {
 public:
  Adadelta(const OptimizerOptions& o, int64_t n)
      : o_(o), square_avg_(n, 0.0f), acc_delta_(n, 0.0f), eps_(o.eps > 0 ? o.eps : 1e-6) {}

  void step(std::span<float> p, std::span<const float> g, double lr) override {
    ++steps_;
    const AdadeltaScalars k{static_cast<float>(o_.rho), static_cast<float>(1 - o_.rho), static_cast<float>(eps_),
                            static_cast<float>(o_.weight_decay), static_cast<float>(-lr)};
    const int64_t n = static_cast<int64_t>(p.size());
    // Chunks handed out as threads come free (element by element, the same bits whoever updates
    // them): with a fixed half each, one thread waited 0.17 ms a step for the other (the seed
    // network's 1.2 M parameters, AMD EPYC Zen 5).
    constexpr int64_t kChunk = 16384;
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = 0; b < n; b += kChunk) {
      adadelta_update(p.data() + b, g.data() + b, square_avg_.data() + b, acc_delta_.data() + b,
                      std::min(kChunk, n - b), k);
    }
  }

  std::vector<TensorView> state() override {
    const Shape shape{static_cast<int64_t>(square_avg_.size())};
    return {{"optimizer.square_avg", DType::F32, shape, square_avg_.data()},
            {"optimizer.acc_delta", DType::F32, shape, acc_delta_.data()},
            {"optimizer.step", DType::I64, {}, &steps_}};
  }

 private:
  OptimizerOptions o_;
  std::vector<float> square_avg_, acc_delta_;
  double eps_;
};

// SGD with momentum and Nesterov, torch.optim.SGD: g += wd*p; buf = g on the first step, else
// buf = momentum*buf + (1-dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g.
class Sgd final : public Optimizer {
 public:
  Sgd(const OptimizerOptions& o, int64_t n) : o_(o), buffer_(o.momentum != 0 ? n : 0, 0.0f) {}

  void step(std::span<float> p, std::span<const float> g, double lr) override {
    const bool first = steps_++ == 0;
    const float wd = static_cast<float>(o_.weight_decay), momentum = static_cast<float>(o_.momentum);
    const float keep = static_cast<float>(1 - o_.dampening), neg_lr = static_cast<float>(-lr);
    const int64_t n = static_cast<int64_t>(p.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float d = wd != 0 ? g[i] + wd * p[i] : g[i];
      if (momentum != 0) {
        buffer_[i] = first ? d : buffer_[i] * momentum + keep * d;
        d = o_.nesterov ? d + momentum * buffer_[i] : buffer_[i];
      }
      p[i] += neg_lr * d;
    }
  }

  std::vector<TensorView> state() override {
    return {{"optimizer.momentum_buffer", DType::F32, {static_cast<int64_t>(buffer_.size())}, buffer_.data()},
            {"optimizer.step", DType::I64, {}, &steps_}};
  }

 private:
  OptimizerOptions o_;
  std::vector<float> buffer_;
};

// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), torch.optim.Adam/AdamW:
//   Adam: g += wd*p   AdamW: p *= 1 - lr*wd
//   m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
class Adam final : public Optimizer {
 public:
  Adam(const OptimizerOptions& o, int64_t n)
      : o_(o), exp_avg_(n, 0.0f), exp_avg_sq_(n, 0.0f), eps_(o.eps > 0 ? o.eps : 1e-8) {}

  void step(std::span<float> p, std::span<const float> g, double lr) override {
    ++steps_;
    const bool decoupled = o_.kind == OptimizerKind::AdamW;
    const float b1 = static_cast<float>(o_.beta1), b2 = static_cast<float>(o_.beta2);
    const float one_minus_b1 = static_cast<float>(1 - o_.beta1), one_minus_b2 = static_cast<float>(1 - o_.beta2);
    const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(steps_));
    const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(steps_));
    const float neg_step_size = static_cast<float>(-lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    const float eps = static_cast<float>(eps_), wd = static_cast<float>(o_.weight_decay);
    const float decay = static_cast<float>(1 - lr * o_.weight_decay);
    const int64_t n = static_cast<int64_t>(p.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float grad = g[i];
      if (decoupled) p[i] *= decay;
      else if (wd != 0) grad += wd * p[i];
      exp_avg_[i] = exp_avg_[i] * b1 + one_minus_b1 * grad;
      exp_avg_sq_[i] = exp_avg_sq_[i] * b2 + one_minus_b2 * grad * grad;
      const float denom = std::sqrt(exp_avg_sq_[i]) / bc2_sqrt + eps;
      p[i] += neg_step_size * (exp_avg_[i] / denom);
    }
  }

  std::vector<TensorView> state() override {
    const Shape shape{static_cast<int64_t>(exp_avg_.size())};
    return {{"optimizer.exp_avg", DType::F32, shape, exp_avg_.data()},
            {"optimizer.exp_avg_sq", DType::F32, shape, exp_avg_sq_.data()},
            {"optimizer.step", DType::I64, {}, &steps_}};
  }

 private:
  OptimizerOptions o_;
  std::vector<float> exp_avg_, exp_avg_sq_;
  double eps_;
};

}  // namespace

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "adadelta") return OptimizerKind::Adadelta;
  if (name == "sgd") return OptimizerKind::SGD;
  if (name == "adam") return OptimizerKind::Adam;
  if (name == "adamw") return OptimizerKind::AdamW;
  fail("--optimizer", "", "unknown optimizer '" + name + "' (adadelta, sgd, adam, adamw)");
}

const char* optimizer_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Adadelta: return "adadelta";
    case OptimizerKind::SGD: return "sgd";
    case OptimizerKind::Adam: return "adam";
    case OptimizerKind::AdamW: return "adamw";
  }
  return "?";
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& o, int64_t n) {
  if (!(o.lr >= 0)) fail("optimizer", "lr", "must not be negative");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    fail("optimizer", "nesterov", "needs a positive momentum and zero dampening");
  }
  switch (o.kind) {
    case OptimizerKind::Adadelta: return std::make_unique<Adadelta>(o, n);
    case OptimizerKind::SGD: return std::make_unique<Sgd>(o, n);
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: return std::make_unique<Adam>(o, n);
  }
  return nullptr;
}

double StepLR::lr_at(int64_t epoch) const {
  return base_lr * std::pow(gamma, static_cast<double>(epoch / step_size));
}

}  // namespace bnlab
