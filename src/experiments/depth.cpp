// depth: does BN make very deep networks trainable? Fully connected ReLU networks of width 64 on
// MNIST (compute is 2 cores: no conv nets here) with 10, 20, 50 and 110 Linear layers (--depths): plain,
// plain with BN before each ReLU, and residual with BN (nets.h), all with PyTorch's default
// initialization from the same seed, SGD with momentum 0.9 over a small learning-rate grid, a
// fixed budget of steps. Also the gradient norm of every Linear weight at initialization.
#include <algorithm>
#include <cmath>
#include <map>

#include "bnlab/error.h"
#include "experiments/init_gradients.h"
#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

constexpr const char* kDefaultDepths = "10,20,50,110";
constexpr double kLrs[] = {0.001, 0.003, 0.01, 0.03, 0.1};
constexpr DepthVariant kVariants[] = {DepthVariant::Plain, DepthVariant::PlainBN, DepthVariant::ResidualBN};
constexpr int64_t kWidth = 64;
constexpr int64_t kGradBatch = 256;  // training images for the gradient at initialization

// The --depths flag: even depths (a residual net's blocks take two Linear layers each).
std::vector<int64_t> depths_of(const Context& ctx) {
  const std::vector<int64_t> depths = ctx.flag_integers("depths", 2, 1000);
  for (int64_t d : depths)
    if (d % 2 != 0) fail("experiment", "--depths", "has " + std::to_string(d) + ": depths must be even");
  return depths;
}

std::string grad_key(DepthVariant v, int64_t depth) { return "grad/" + std::string(variant_name(v)) + "/d" + std::to_string(depth); }
std::string train_key(DepthVariant v, int64_t depth, double lr, int64_t seed) {
  return std::string(variant_name(v)) + "/d" + std::to_string(depth) + "/lr" + field(lr) + "/s" + std::to_string(seed);
}

class Depth final : public Experiment {
 public:
  std::string_view name() const override { return "depth"; }
  std::string_view summary() const override {
    return "plain, plain+BN and residual+BN MLPs of 10-110 layers: accuracy after a fixed budget, gradients at init";
  }
  int64_t default_steps() const override { return 1000; }
  int64_t default_eval_every(int64_t steps) const override { return std::max<int64_t>(1, steps / 10); }
  std::vector<FlagInfo> flags() const override {
    return {{"depths", "Linear layers per network, even, comma-separated", kDefaultDepths, false}};
  }
  std::vector<std::string> columns() const override {
    return {"run", "variant", "depth", "lr", "seed", "step", "layer", "metric", "value"};
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    std::vector<PlannedRun> runs;
    for (int64_t depth : depths_of(ctx)) {
      for (DepthVariant v : kVariants) {
        runs.push_back({grad_key(v, depth), [&ctx, v, depth](const ProgressFn&) { return gradients(ctx, v, depth); }});
        for (double lr : kLrs)
          for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
            runs.push_back({train_key(v, depth, lr, seed),
                            [&ctx, v, depth, lr, seed](const ProgressFn& p) { return train(ctx, v, depth, lr, seed, p); }});
      }
    }
    return runs;
  }

  static RunOutput gradients(const Context& ctx, DepthVariant v, int64_t depth) {
    Network net = build_model(deep_mlp_text(depth, v, kWidth), variant_name(v), *ctx.data, 1);
    std::vector<double> norms;
    for (const WeightGradient& g : weight_gradients_at_init(net, *ctx.data, kGradBatch)) norms.push_back(g.norm);
    std::vector<Row> rows;
    for (size_t k = 0; k < norms.size(); ++k)
      rows.push_back({grad_key(v, depth), variant_name(v), field(depth), "nan", "1", "0", field(static_cast<int64_t>(k + 1)),
                      "grad_norm", field(norms[k])});
    return {rows, "first layer " + field(norms.front()) + ", last " + field(norms.back())};
  }

  static RunOutput train(const Context& ctx, DepthVariant v, int64_t depth, double lr, int64_t seed, const ProgressFn& p) {
    Network net = build_model(deep_mlp_text(depth, v, kWidth), variant_name(v), *ctx.data, static_cast<uint64_t>(seed));
    const LoopOptions loop{.steps = ctx.options.steps, .optimizer = {.kind = OptimizerKind::SGD, .lr = lr, .momentum = 0.9},
                           .seed = static_cast<uint64_t>(seed), .eval_every = ctx.options.eval_every};
    const LoopResult r = train_steps(net, *ctx.data, loop, p);
    const std::string key = train_key(v, depth, lr, seed);
    std::vector<Row> rows;
    auto add = [&](int64_t step, const char* metric, double value) {
      rows.push_back({key, variant_name(v), field(depth), field(lr), field(seed), field(step), "", metric, field(value)});
    };
    for (const CurvePoint& c : r.curve) {
      add(c.step, "test_accuracy", c.test_accuracy);
      add(c.step, "train_loss", c.train_loss);
    }
    if (r.diverged_at > 0) add(r.diverged_at, "diverged", 1);
    else add(r.steps_done, "final_accuracy", r.final_test.accuracy());
    return {rows, outcome(r)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    Markdown md("Depth: plain and residual networks with and without BN");
    md.paragraph(settings_paragraph(
        ctx, "Fully connected ReLU networks of width " + std::to_string(kWidth) + " (depth counts Linear layers), " +
                 "PyTorch's default initialization, SGD with momentum 0.9, batch 64, learning rates 0.001 to 0.1; " +
                 "final accuracy on the whole test set. Gradient norms: one backward pass of " +
                 std::to_string(kGradBatch) + " training images at initialization (seed 1)."));
    Figure fig{.name = "depth", .title = "Deep fully connected networks (width 64) on MNIST", .rows = 2, .cols = 2,
               .width = 1200, .height = 900, .panels = {}};
    Panel acc{.title = "(a) test accuracy after " + std::to_string(ctx.options.steps) + " steps (best learning rate)",
              .xlabel = "depth (Linear layers)", .ylabel = "test accuracy (%)", .logx = true, .xmin = 8, .xmax = 140,
              .ymin = 0, .ymax = 100, .key = "bottom left"};
    const std::vector<int64_t> depths = depths_of(ctx);
    acc.xmin = 0.8 * static_cast<double>(*std::min_element(depths.begin(), depths.end()));
    acc.xmax = 1.27 * static_cast<double>(*std::max_element(depths.begin(), depths.end()));
    for (int64_t d : depths) acc.xtics.push_back({static_cast<double>(d), std::to_string(d)});
    std::vector<std::vector<std::string>> table;
    for (size_t vi = 0; vi < std::size(kVariants); ++vi) {
      const DepthVariant v = kVariants[vi];
      Series best_series{.title = variant_name(v), .style = Style::LinesPoints, .color = static_cast<int>(vi) + 1};
      Panel grads{.title = std::string("(") + char('b' + vi) + ") gradient norm at initialization: " + variant_name(v),
                  .xlabel = "Linear layer (1 = input side)", .ylabel = "||dL/dW|| (Frobenius)", .logy = true,
                  .key = "top right"};
      for (size_t di = 0; di < depths.size(); ++di) {
        const int64_t depth = depths[di];
        Series g{.title = std::to_string(depth) + " layers", .color = static_cast<int>(di) + 1};
        for (const Row* r : t.where("run", grad_key(v, depth))) {
          g.x.push_back(t.number(*r, "layer"));
          g.y.push_back(t.number(*r, "value"));
        }
        grads.series.push_back(std::move(g));
        std::vector<std::string> cells = {variant_name(v), std::to_string(depth)};
        double best = std::nan(""), best_lr = std::nan("");
        for (double lr : kLrs) {
          std::vector<double> accs;
          int diverged = 0;
          for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
            for (const Row* r : t.where("run", train_key(v, depth, lr, seed))) {
              if (t.text(*r, "metric") == "final_accuracy") accs.push_back(t.number(*r, "value"));
              if (t.text(*r, "metric") == "diverged") ++diverged;
            }
          }
          std::string cell = mean_pm(accs, 2);
          if (diverged > 0) cell = accs.empty() ? "diverged" : cell + " (" + std::to_string(diverged) + " diverged)";
          cells.push_back(cell);
          if (!accs.empty() && !(mean(accs) <= best)) {
            best = mean(accs);
            best_lr = lr;
          }
        }
        cells.push_back(std::isnan(best) ? "n/a" : fixed(best, 2) + " (lr " + field(best_lr) + ")");
        table.push_back(cells);
        best_series.x.push_back(static_cast<double>(depth));
        best_series.y.push_back(best);
      }
      acc.series.push_back(std::move(best_series));
      fig.panels.push_back(std::move(grads));
    }
    fig.panels.insert(fig.panels.begin(), acc);
    std::vector<std::string> header = {"variant", "depth"};
    for (double lr : kLrs) header.push_back("lr " + field(lr));
    header.push_back("best");
    md.table(header, table);
    md.paragraph("Test accuracy in percent after the budget (mean ± std over seeds when there are several); "
                 "10% is chance.");
    md.figure(fig.name, "accuracy against depth, and gradient norms per layer at initialization");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_depth() { return std::make_unique<Depth>(); }

}  // namespace bnlab::experiments
