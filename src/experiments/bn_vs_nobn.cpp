// bn-vs-nobn: does BN make training converge faster, and tolerate a learning rate that the
// same network without BN does not? The tutorial's network (preset seed) and the same without BN
// (seed-nobn), at the PyTorch example's recipe (Adadelta, lr 1.0) and at plain SGD with lr 1.0,
// where seed-nobn's loss becomes NaN within a few dozen steps (found by trying 0.5 and 1.0).
#include <cmath>

#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

const Recipe kRecipes[] = {
    {"adadelta", "Adadelta, lr 1.0 (the PyTorch example)", {.kind = OptimizerKind::Adadelta, .lr = 1.0}},
    {"sgd-lr1", "SGD, lr 1.0 (no momentum)", {.kind = OptimizerKind::SGD, .lr = 1.0}},
};
const char* const kModels[] = {"seed", "seed-nobn"};

std::string key(const char* model, const char* recipe, int64_t seed) {
  return std::string(model) + "/" + recipe + "/s" + std::to_string(seed);
}

// First curve step whose subset accuracy reaches `bar`; NaN if none.
double steps_to(const Table& t, const std::vector<const Row*>& rows, double bar) {
  for (const Row* r : rows)
    if (t.text(*r, "status") == "curve" && t.number(*r, "test_accuracy") >= bar) return t.number(*r, "step");
  return std::nan("");
}

class BnVsNoBn final : public Experiment {
 public:
  std::string_view name() const override { return "bn-vs-nobn"; }
  std::string_view summary() const override {
    return "seed vs seed-nobn: test accuracy and training loss against steps, at Adadelta lr 1.0 and SGD lr 1.0";
  }
  int64_t default_steps() const override { return 938; }  // one epoch of 60,000 images in batches of 64

  std::vector<std::string> columns() const override {
    std::vector<std::string> c = {"run", "model", "recipe", "seed"};
    for (const std::string& s : curve_columns()) c.push_back(s);
    return c;
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    std::vector<PlannedRun> runs;
    for (const Recipe& recipe : kRecipes) {
      for (const char* model : kModels) {
        for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
          runs.push_back({key(model, recipe.name, seed), [&ctx, &recipe, model, seed](const ProgressFn& progress) {
                            Network net = build_model(model_text(model), model, *ctx.data, static_cast<uint64_t>(seed));
                            const LoopOptions loop{.steps = ctx.options.steps, .optimizer = recipe.optimizer,
                                                   .seed = static_cast<uint64_t>(seed), .eval_every = ctx.options.eval_every,
                                                   .loss_every = std::max<int64_t>(1, ctx.options.eval_every / 5)};
                            const LoopResult r = train_steps(net, *ctx.data, loop, progress);
                            return RunOutput{curve_rows(r, {key(model, recipe.name, seed), model, recipe.name, field(seed)}),
                                             outcome(r)};
                          }});
        }
      }
    }
    return runs;
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    Figure fig{.name = "bn-vs-nobn", .title = "The tutorial's network on MNIST with and without batch normalization",
               .rows = 2, .cols = 2, .width = 1100, .height = 800, .panels = {}};
    Markdown md("Batch normalization vs none: convergence and learning rate");
    md.paragraph(settings_paragraph(ctx, "Batch 64; the curves evaluate the first " +
                                             std::to_string(std::min<int64_t>(2000, ctx.data->test.count)) +
                                             " test images every " + std::to_string(ctx.options.eval_every) +
                                             " steps, the table's final accuracy the whole test set."));
    std::vector<std::vector<std::string>> table;
    for (int row = 0; row < 2; ++row) {
      for (const Recipe& recipe : kRecipes) {
        Panel p{.title = recipe.label, .xlabel = "training step (mini-batches of 64)",
                .ylabel = row == 0 ? "test accuracy (%), first 2,000 test images" : "training loss (NLL, mean since previous point)",
                .logy = row == 1, .key = row == 0 ? "bottom right" : "top right"};
        if (row == 0) {  // zoomed: every curve passes 90% within the first evaluations
          p.ymin = 90;
          p.ymax = 100;
        }
        int color = 0;
        for (const char* model : kModels) {
          ++color;
          for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
            const auto rows = t.where("run", key(model, recipe.name, seed));
            Series s{.title = seed > 1 ? "" : std::string(model) + (std::string(model) == "seed" ? " (BN)" : " (no BN)"),
                     .color = color};
            int64_t diverged = 0;
            for (const Row* r : rows) {
              if (t.text(*r, "status") == "diverged") diverged = static_cast<int64_t>(t.number(*r, "step"));
              if (t.text(*r, "status") != "curve") continue;
              const double y = t.number(*r, row == 0 ? "test_accuracy" : "train_loss");
              if (!std::isfinite(y)) continue;
              s.x.push_back(t.number(*r, "step"));
              s.y.push_back(y);
            }
            if (diverged > 0 && !s.title.empty()) s.title += ", diverged at step " + std::to_string(diverged);
            if (diverged > 0 && row == 1 && !s.y.empty()) {  // a cross where the loss became NaN
              p.series.push_back({.title = seed > 1 ? "" : "loss not finite (NaN): run stopped", .x = {static_cast<double>(diverged)},
                                  .y = {s.y.back()}, .style = Style::Cross, .color = color});
            }
            p.series.push_back(std::move(s));
            if (row == 1) continue;
            double final_acc = std::nan("");
            for (const Row* r : rows)
              if (t.text(*r, "status") == "final") final_acc = t.number(*r, "test_accuracy");
            table.push_back({model, recipe.label, field(seed), diverged > 0 ? "—" : fixed(final_acc, 2),
                             fixed(steps_to(t, rows, 97.0), 0), fixed(steps_to(t, rows, 98.0), 0),
                             diverged > 0 ? "**diverged at step " + std::to_string(diverged) + "** (NaN loss)" : "trained"});
          }
        }
        fig.panels.push_back(std::move(p));
      }
    }
    md.table({"model", "recipe", "seed", "final test accuracy (%)", "first step ≥ 97%", "first step ≥ 98%", "outcome"}, table);
    md.paragraph("Steps to a bar are the first evaluation point at or above it on the test subset (n/a: not reached).");
    md.figure(fig.name, "test accuracy and training loss against steps, with and without BN");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_bn_vs_nobn() { return std::make_unique<BnVsNoBn>(); }

}  // namespace bnlab::experiments
