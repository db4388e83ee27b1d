// Optimizer update rules against the formulas of torch.optim, computed here in double for a
// few steps; the PyTorch fixtures (tests/) check them against PyTorch itself.
#include "bnlab/optim.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bnlab/error.h"

namespace bnlab {
namespace {

const std::vector<float> kGrads[3] = {{0.5f, -1.0f, 2.0f}, {0.25f, 0.5f, -1.0f}, {-0.1f, 0.2f, 0.3f}};

std::vector<float> run(const OptimizerOptions& o, double lr, int steps = 3) {
  std::vector<float> p = {1.0f, -2.0f, 0.5f};
  auto opt = make_optimizer(o, 3);
  for (int s = 0; s < steps; ++s) opt->step(p, kGrads[s], lr);
  return p;
}

TEST(Optimizers, AdadeltaMatchesItsDefinition) {
  const std::vector<float> p = run({.kind = OptimizerKind::Adadelta, .weight_decay = 0.01}, 1.0);
  for (int i = 0; i < 3; ++i) {
    double x = std::vector<double>{1.0, -2.0, 0.5}[i], v = 0, u = 0;
    for (int s = 0; s < 3; ++s) {
      const double g = kGrads[s][i] + 0.01 * x;
      v = 0.9 * v + 0.1 * g * g;
      const double d = std::sqrt(u + 1e-6) / std::sqrt(v + 1e-6) * g;
      u = 0.9 * u + 0.1 * d * d;
      x -= d;
    }
    EXPECT_NEAR(p[i], x, 1e-6);
  }
}

TEST(Optimizers, SgdMomentumAndNesterov) {
  for (bool nesterov : {false, true}) {
    const std::vector<float> p = run({.kind = OptimizerKind::SGD, .weight_decay = 1e-4, .momentum = 0.9, .nesterov = nesterov}, 0.1);
    for (int i = 0; i < 3; ++i) {
      double x = std::vector<double>{1.0, -2.0, 0.5}[i], buf = 0;
      for (int s = 0; s < 3; ++s) {
        double g = kGrads[s][i] + 1e-4 * x;
        buf = s == 0 ? g : 0.9 * buf + g;
        g = nesterov ? g + 0.9 * buf : buf;
        x -= 0.1 * g;
      }
      EXPECT_NEAR(p[i], x, 1e-6) << (nesterov ? "nesterov" : "momentum");
    }
  }
}

TEST(Optimizers, AdamAndAdamW) {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::AdamW}) {
    const std::vector<float> p = run({.kind = kind, .weight_decay = 0.1}, 0.01);
    for (int i = 0; i < 3; ++i) {
      double x = std::vector<double>{1.0, -2.0, 0.5}[i], m = 0, v = 0;
      for (int s = 1; s <= 3; ++s) {
        double g = kGrads[s - 1][i];
        if (kind == OptimizerKind::AdamW) x *= 1 - 0.01 * 0.1;
        else g += 0.1 * x;
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        const double denom = std::sqrt(v) / std::sqrt(1 - std::pow(0.999, s)) + 1e-8;
        x -= 0.01 / (1 - std::pow(0.9, s)) * m / denom;
      }
      EXPECT_NEAR(p[i], x, 1e-6) << optimizer_name(kind);
    }
  }
}

TEST(Optimizers, StepLRDecaysPerEpoch) {
  const StepLR s{.base_lr = 1.0, .gamma = 0.7};
  EXPECT_DOUBLE_EQ(s.lr_at(0), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.49);
}

TEST(Optimizers, RejectsNonsense) {
  EXPECT_THROW(parse_optimizer_kind("rmsprop"), Error);
  EXPECT_THROW(make_optimizer({.kind = OptimizerKind::SGD, .nesterov = true}, 1), Error);
}

}  // namespace
}  // namespace bnlab
