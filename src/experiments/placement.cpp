// placement: is there a best place for BN? The tutorial's network with BN before each ReLU
// (seed), after each ReLU (seed-bn-after-relu), on the conv layers only (seed-bn-conv-only) and
// without BN (seed-nobn), at the PyTorch example's recipe (Adadelta, lr 1.0, batch 64), over
// several seeds: accuracy after the budget (mean, spread) and steps to reach 97% and 98%.
#include <algorithm>
#include <cmath>
#include <map>

#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

struct Variant {
  const char* model;
  const char* label;
  const char* tic;  // short, for the x axis
};

const Variant kVariants[] = {
    {"seed", "BN before ReLU (seed)", "before ReLU"},
    {"seed-bn-after-relu", "BN after ReLU", "after ReLU"},
    {"seed-bn-conv-only", "BN on the conv layers only", "conv only"},
    {"seed-nobn", "no BN", "no BN"},
};
constexpr double kBars[] = {97.0, 98.0};  // steps to reach each, on the test subset

// `model` as Markdown code. (Built by appending: GCC 12 warns falsely, -Wrestrict, on "`" + s + "`".)
std::string code(const char* model) {
  std::string s = "`";
  s += model;
  s += '`';
  return s;
}

// "460 (3 of 3)": mean steps over the seeds that reached a bar, and how many did.
std::string reach(const std::vector<double>& steps, size_t seeds) {
  const std::string count = " (" + std::to_string(steps.size()) + " of " + std::to_string(seeds) + ")";
  return steps.empty() ? "not reached" + count : fixed(mean(steps), 0) + count;
}

std::string key(const char* model, int64_t seed) { return std::string(model) + "/s" + std::to_string(seed); }

class Placement final : public Experiment {
 public:
  std::string_view name() const override { return "placement"; }
  std::string_view summary() const override {
    return "BN before ReLU, after ReLU, on the conv layers only, none: accuracy over seeds and steps to 98%";
  }
  int64_t default_steps() const override { return 938; }  // one epoch
  int64_t default_seeds() const override { return 3; }

  std::vector<std::string> columns() const override {
    std::vector<std::string> c = {"run", "model", "seed"};
    for (const std::string& s : curve_columns()) c.push_back(s);
    return c;
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    std::vector<PlannedRun> runs;
    for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {  // seed-major: a cut run still compares all
      for (const Variant& v : kVariants) {
        runs.push_back({key(v.model, seed), [&ctx, &v, seed](const ProgressFn& progress) {
                          Network net = build_model(model_text(v.model), v.model, *ctx.data, static_cast<uint64_t>(seed));
                          const LoopOptions loop{.steps = ctx.options.steps,
                                                 .optimizer = {.kind = OptimizerKind::Adadelta, .lr = 1.0},
                                                 .seed = static_cast<uint64_t>(seed), .eval_every = ctx.options.eval_every};
                          const LoopResult r = train_steps(net, *ctx.data, loop, progress);
                          return RunOutput{curve_rows(r, {key(v.model, seed), v.model, field(seed)}), outcome(r)};
                        }});
      }
    }
    return runs;
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    Markdown md("BN placement in the tutorial's network");
    md.paragraph(settings_paragraph(ctx, "Adadelta lr 1.0, batch 64, " + std::to_string(ctx.options.seeds) +
                                             " seeds (initialization, order and dropout). The curves and the steps to " +
                                             "97% and 98% use the first " +
                                             std::to_string(std::min<int64_t>(2000, ctx.data->test.count)) +
                                             " test images every " + std::to_string(ctx.options.eval_every) +
                                             " steps; the final accuracy the whole test set."));
    Figure fig{.name = "placement", .title = "Where to put BN: the tutorial's network on MNIST",
               .rows = 1, .cols = 2, .width = 1200, .height = 500, .panels = {}};
    Panel curves{.title = "test accuracy during training (mean over seeds)", .xlabel = "training step (batches of 64)",
                 .ylabel = "test accuracy (%), test subset", .ymin = 90, .ymax = 100};
    Panel finals{.title = "after " + std::to_string(ctx.options.steps) + " steps: each seed, and mean ± std",
                 .xlabel = "", .ylabel = "test accuracy (%), whole test set", .xmin = -0.5,
                 .xmax = static_cast<double>(std::size(kVariants)) - 0.5, .key = "bottom left"};
    std::vector<std::vector<std::string>> table;
    Series seeds_dots{.title = "one seed", .style = Style::Points, .color = 8};
    Series means{.title = "mean ± std", .style = Style::ErrorBars, .color = 2};
    for (size_t vi = 0; vi < std::size(kVariants); ++vi) {
      const Variant& v = kVariants[vi];
      std::vector<double> finals_v, reached[2];
      std::map<int64_t, std::vector<double>> by_step;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
        const auto rows = t.where("run", key(v.model, seed));
        double first[2] = {std::nan(""), std::nan("")};
        for (const Row* r : rows) {
          const std::string& status = t.text(*r, "status");
          const double acc = t.number(*r, "test_accuracy"), step = t.number(*r, "step");
          if (status == "final") finals_v.push_back(acc);
          if (status != "curve" || std::isnan(acc)) continue;
          by_step[static_cast<int64_t>(step)].push_back(acc);
          for (int b = 0; b < 2; ++b)
            if (std::isnan(first[b]) && acc >= kBars[b]) first[b] = step;
        }
        for (int b = 0; b < 2; ++b)
          if (!std::isnan(first[b])) reached[b].push_back(first[b]);
      }
      Series curve{.title = v.label, .color = static_cast<int>(vi) + 1};
      for (const auto& [step, accs] : by_step) {
        curve.x.push_back(static_cast<double>(step));
        curve.y.push_back(mean(accs));
      }
      curves.series.push_back(std::move(curve));
      for (double a : finals_v) {
        seeds_dots.x.push_back(static_cast<double>(vi) + 0.15);
        seeds_dots.y.push_back(a);
      }
      means.x.push_back(static_cast<double>(vi));
      means.y.push_back(mean(finals_v));
      means.err.push_back(stddev(finals_v));
      finals.xtics.push_back({static_cast<double>(vi), v.tic});
      const double lo = finals_v.empty() ? std::nan("") : *std::min_element(finals_v.begin(), finals_v.end());
      const double hi = finals_v.empty() ? std::nan("") : *std::max_element(finals_v.begin(), finals_v.end());
      table.push_back({v.label, code(v.model), mean_pm(finals_v, 2), fixed(lo, 2) + " – " + fixed(hi, 2),
                       reach(reached[0], finals_v.size()), reach(reached[1], finals_v.size())});
    }
    finals.series = {seeds_dots, means};
    // Zoom on the top of the accuracy axis once every mean curve has got there.
    double lowest_final = 100;
    for (const Series& c : curves.series)
      if (!c.y.empty()) lowest_final = std::min(lowest_final, c.y.back());
    if (lowest_final < 92) curves.ymin.reset();
    fig.panels = {curves, finals};
    md.table({"placement", "model", "final test accuracy (%), mean ± std", "min – max",
              "steps to 97%", "steps to 98%"},
             table);
    md.paragraph("Steps to a bar: the first evaluation at or above it on the test subset, averaged over the seeds "
                 "that reached it within the budget (how many did, in parentheses).");
    md.figure(fig.name, "test accuracy by BN placement");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_placement() { return std::make_unique<Placement>(); }

}  // namespace bnlab::experiments
