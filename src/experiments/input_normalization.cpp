// input-normalization: the seed's first paragraph. Standardizing the inputs to mean 0 and
// variance 1 puts the parameters on a similar scale; BN normalizes per batch "as opposed to the
// entire data set". The tutorial's network with BN (seed) and without (seed-nobn) on raw pixels
// (0 to 255), on pixels / 255 and on standardized pixels, at the example's Adadelta and at plain
// SGD: convergence, final accuracy, and each layer's weight gradient at initialization.
//
// What to expect with BN: conv1 (no padding) feeds BatchNorm2d, which removes any per-channel
// scale and shift of conv1's output, so the loss is the same function of the weights for every
// affine scaling of the pixels (BN(W(ax + b) + c) = BN(Wx) up to eps), with the same gradients:
// the three runs should coincide except for eps and rounding.
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

constexpr int64_t kBatch = 64;
constexpr int64_t kGradImages = 256;  // training images of the gradient at initialization
const char* const kModels[] = {"seed", "seed-nobn"};
constexpr InputScale kScales[] = {InputScale::Raw, InputScale::Unit, InputScale::Standardize};
const char* const kScaleLabels[] = {"raw pixels, 0 to 255", "pixels / 255, 0 to 1", "standardized, (x - mean) / std"};

struct RecipeLabel {  // the SGD learning rate is a flag: optimizer_of
  const char* name;
  const char* label;
};
const RecipeLabel kRecipes[] = {{"adadelta", "Adadelta, lr 1.0 (the PyTorch example)"}, {"sgd", "SGD"}};

OptimizerOptions optimizer_of(const Context& ctx, const std::string& recipe) {
  if (recipe == "adadelta") return {.kind = OptimizerKind::Adadelta, .lr = 1.0};
  return {.kind = OptimizerKind::SGD, .lr = ctx.flag_number("sgd-lr", 1e-6, 100)};
}

std::string train_key(const std::string& model, const std::string& recipe, InputScale scale, int64_t seed) {
  return model + "/" + recipe + "/" + input_scale_name(scale) + "/s" + std::to_string(seed);
}
std::string grad_key(const std::string& model, InputScale scale) {
  return "grad/" + model + "/" + input_scale_name(scale);
}

DataSource scaled(const DataSource& data, InputScale scale) {
  DataSource copy = data;
  copy.scale = scale;
  return copy;
}

const Row* final_row(const Table& t, const std::string& key) {
  for (const Row* r : t.where("run", key))
    if (t.text(*r, "status") == "final" || t.text(*r, "status") == "diverged") return r;
  return nullptr;
}

class InputNormalizationExperiment final : public Experiment {
 public:
  std::string_view name() const override { return "input-normalization"; }
  std::string_view summary() const override {
    return "raw, [0, 1] and standardized pixels with and without BN: convergence, accuracy, gradients at init";
  }
  int64_t default_steps() const override { return 600; }
  std::vector<FlagInfo> flags() const override {
    return {{"sgd-lr", "learning rate of the SGD runs (no momentum)", "0.05", true}};
  }
  std::vector<std::string> columns() const override {
    std::vector<std::string> c = {"run", "model", "recipe", "scale", "seed", "layer", "grad_norm"};
    for (const std::string& s : curve_columns()) c.push_back(s);
    return c;
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    ctx.flag_number("sgd-lr", 1e-6, 100);
    std::vector<PlannedRun> runs;
    for (const char* model : kModels) {
      for (InputScale scale : kScales) {
        runs.push_back({grad_key(model, scale), [&ctx, model, scale](const ProgressFn&) { return gradients(ctx, model, scale); }});
        for (const RecipeLabel& recipe : kRecipes)
          for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
            runs.push_back({train_key(model, recipe.name, scale, seed), [&ctx, model, &recipe, scale, seed](const ProgressFn& p) {
                              return train(ctx, model, recipe.name, scale, seed, p);
                            }});
      }
    }
    return runs;
  }

  static RunOutput gradients(const Context& ctx, const std::string& model, InputScale scale) {
    const DataSource data = scaled(*ctx.data, scale);
    Network net = build_model(model_text(model), model, data, 1);
    std::vector<Row> rows;
    for (const WeightGradient& g : weight_gradients_at_init(net, data, kGradImages)) {
      Row row = {grad_key(model, scale), model, "init", input_scale_name(scale), "1", g.name, field(g.norm)};
      for (const char* s : {"0", "nan", "nan", "nan", "grad"}) row.push_back(s);
      rows.push_back(std::move(row));
    }
    return {rows, "first weight's gradient " + rows.front()[6] + ", last " + rows.back()[6]};
  }

  static RunOutput train(const Context& ctx, const std::string& model, const std::string& recipe, InputScale scale,
                         int64_t seed, const ProgressFn& progress) {
    const DataSource data = scaled(*ctx.data, scale);
    const uint64_t s = static_cast<uint64_t>(seed);
    Network net = build_model(model_text(model), model, data, s);
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch, .optimizer = optimizer_of(ctx, recipe),
                           .seed = s, .eval_every = ctx.options.eval_every,
                           .loss_every = std::max<int64_t>(1, ctx.options.eval_every / 5)};
    const LoopResult r = train_steps(net, data, loop, progress);
    const std::string key = train_key(model, recipe, scale, seed);
    return {curve_rows(r, {key, model, recipe, input_scale_name(scale), field(seed), "", "nan"}), outcome(r)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    const std::string sgd_label = "SGD, lr " + ctx.flag("sgd-lr") + " (no momentum)";
    auto recipe_label = [&](const RecipeLabel& r) { return std::string(r.name) == "sgd" ? sgd_label : std::string(r.label); };
    Markdown md("Input normalization: raw, [0, 1] and standardized pixels, with and without BN");
    md.paragraph(settings_paragraph(
        ctx, "`seed` (BN) and `seed-nobn` on the pixels as they are (0 to 255), divided by 255 (0 to 1), and "
             "standardized with the training set's mean and deviation (the example's `Normalize`, what `bnlab train` does "
             "by default): `bnlab train --input-scale raw|unit|standardize`. Batches of 64, " +
                 std::to_string(ctx.options.steps) + " steps (" + std::to_string(ctx.options.steps * kBatch) +
                 " images) per run, at " + kRecipes[0].label + " and at " + sgd_label +
                 "; the curves evaluate the first 2,000 test images every " + std::to_string(ctx.options.eval_every) +
                 " steps, the final accuracy the whole test set. The same seed gives every scaling the same "
                 "initialization, data order and dropout."));

    // Final accuracy per (model, recipe, scale), over seeds; NaN for a diverged run.
    std::map<std::string, std::vector<double>> finals;
    std::map<std::string, int64_t> diverged;
    std::vector<std::vector<std::string>> table;
    for (const RecipeLabel& recipe : kRecipes) {
      for (const char* model : kModels) {
        for (size_t si = 0; si < std::size(kScales); ++si) {
          const InputScale scale = kScales[si];
          std::vector<double> acc, to97;
          std::string outcome = "trained";
          for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
            const std::string key = train_key(model, recipe.name, scale, seed);
            const Row* f = final_row(t, key);
            if (f && t.text(*f, "status") == "diverged") {
              diverged[std::string(model) + recipe.name + input_scale_name(scale)] = static_cast<int64_t>(t.number(*f, "step"));
              outcome = "**diverged at step " + fixed(t.number(*f, "step"), 0) + "**";
              continue;
            }
            if (f) acc.push_back(t.number(*f, "test_accuracy"));
            double first = std::nan("");
            for (const Row* r : t.where("run", key))
              if (t.text(*r, "status") == "curve" && t.number(*r, "test_accuracy") >= 97.0) {
                first = t.number(*r, "step");
                break;
              }
            to97.push_back(first);
          }
          finals[std::string(model) + recipe.name + input_scale_name(scale)] = acc;
          const bool all_reached = !to97.empty() && std::all_of(to97.begin(), to97.end(), [](double v) { return std::isfinite(v); });
          table.push_back({model, recipe_label(recipe), kScaleLabels[si], acc.empty() ? "—" : mean_pm(acc, 2),
                           all_reached ? fixed(mean(to97), 0) : "not reached", outcome});
        }
      }
    }
    md.table({"model", "recipe", "input", "final test accuracy (%)", "first step ≥ 97%", "outcome"}, table);

    // Gradient norms at initialization: one column per weight.
    std::vector<std::string> layers;
    for (const Row* r : t.where("run", grad_key("seed", InputScale::Standardize))) layers.push_back(t.text(*r, "layer"));
    std::vector<std::vector<std::string>> grads;
    std::map<std::string, double> spread;  // largest / smallest gradient norm per (model, scale)
    Figure grad_fig{.name = "input-normalization-gradients",
                    .title = "Each layer's weight gradient at initialization (" + std::to_string(kGradImages) + " training images)",
                    .rows = 1, .cols = 2, .width = 1100, .height = 520, .panels = {}};
    for (const char* model : kModels) {
      Panel p{.title = std::string(model) + (std::string(model) == "seed" ? " (BN)" : " (no BN)"), .xlabel = "",
              .ylabel = "gradient norm (Frobenius)", .logy = true, .key = "below"};
      for (size_t si = 0; si < std::size(kScales); ++si) {
        std::vector<std::string> line = {model, kScaleLabels[si]};
        Series s{.title = kScaleLabels[si], .style = Style::LinesPoints, .color = static_cast<int>(si) + 1};
        double lo = INFINITY, hi = 0;
        int index = 0;
        for (const Row* r : t.where("run", grad_key(model, kScales[si]))) {
          const double g = t.number(*r, "grad_norm");
          line.push_back(fixed(g, 4));
          s.x.push_back(++index);
          s.y.push_back(g);
          lo = std::min(lo, g);
          hi = std::max(hi, g);
        }
        spread[std::string(model) + input_scale_name(kScales[si])] = hi / lo;
        line.push_back(fixed(hi / lo, 1));
        grads.push_back(line);
        p.series.push_back(std::move(s));
      }
      for (size_t i = 0; i < layers.size(); ++i) p.xtics.push_back({static_cast<double>(i + 1), layers[i]});
      p.xmin = 0.5;
      p.xmax = static_cast<double>(layers.size()) + 0.5;
      grad_fig.panels.push_back(std::move(p));
    }
    std::vector<std::string> header = {"model", "input"};
    for (const std::string& l : layers) header.push_back(l + " gradient");
    header.push_back("largest / smallest");
    md.paragraph("Gradient norms of each weight at initialization, over the first " + std::to_string(kGradImages) +
                 " training images in training mode (the first step's direction before the optimizer scales it):");
    md.table(header, grads);

    // Curves: per recipe, test accuracy with BN, without BN, and the training loss of both.
    Figure fig{.name = "input-normalization", .title = "The tutorial's network on raw, [0, 1] and standardized pixels",
               .rows = 2, .cols = 3, .width = 1500, .height = 820, .panels = {}};
    // BN's three scalings at the same curve point (seed 1): the largest test-accuracy gap up to
    // kWarmup steps and after it, and the largest relative gap in training loss.
    constexpr double kWarmup = 50;  // 0.9^50 < 1%: the running statistics have forgotten their start
    constexpr double kSameSteps = 20;  // before rounding differences have grown
    double early_gap = 0, late_gap = 0, loss_gap = 0, early_loss_gap = 0;
    for (const RecipeLabel& recipe : kRecipes) {
      Panel loss{.title = "training loss, " + recipe_label(recipe), .xlabel = "training step (mini-batches of 64)",
                 .ylabel = "training loss (NLL, mean since previous point)", .logy = true, .key = "top right"};
      loss.ymin = 0.01;  // raw pixels without BN start far above: clipped, so the rest stays readable
      loss.ymax = 100;
      for (const char* model : kModels) {
        const bool bn = std::string(model) == "seed";
        Panel p{.title = std::string(bn ? "with BN" : "without BN") + ", " + recipe_label(recipe),
                .xlabel = "training step (mini-batches of 64)", .ylabel = "test accuracy (%), first 2,000 test images",
                .key = bn ? "bottom right" : "center right"};
        p.ymin = 0;
        p.ymax = 100;
        std::map<double, std::vector<double>> accuracy_at, loss_at;
        for (size_t si = 0; si < std::size(kScales); ++si) {
          for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
            const std::string label = seed > 1 ? "" : kScaleLabels[si];
            Series s{.title = label, .color = static_cast<int>(si) + 1};
            Series l{.title = seed > 1 ? "" : std::string(bn ? "BN, " : "no BN, ") + kScaleLabels[si],
                     .style = bn ? Style::Lines : Style::Dashed, .color = static_cast<int>(si) + 1};
            for (const Row* r : t.where("run", train_key(model, recipe.name, kScales[si], seed))) {
              if (t.text(*r, "status") != "curve") continue;
              const double step = t.number(*r, "step"), acc = t.number(*r, "test_accuracy"), nll = t.number(*r, "train_loss");
              if (std::isfinite(acc)) {
                s.x.push_back(step);
                s.y.push_back(acc);
                if (seed == 1) accuracy_at[step].push_back(acc);
              }
              if (std::isfinite(nll)) {
                l.x.push_back(step);
                l.y.push_back(nll);
                if (seed == 1) loss_at[step].push_back(nll);
              }
            }
            p.series.push_back(std::move(s));
            loss.series.push_back(std::move(l));
          }
        }
        if (bn) {
          auto spread = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()); };
          for (const auto& [step, v] : accuracy_at) {
            if (v.size() != std::size(kScales) || step == 0) continue;
            double& gap = step <= kWarmup ? early_gap : late_gap;
            gap = std::max(gap, spread(v));
          }
          for (const auto& [step, v] : loss_at) {
            if (v.size() != std::size(kScales)) continue;
            loss_gap = std::max(loss_gap, spread(v) / mean(v));
            if (step <= kSameSteps) early_loss_gap = std::max(early_loss_gap, spread(v) / mean(v));
          }
        }
        fig.panels.push_back(std::move(p));
      }
      fig.panels.push_back(std::move(loss));
    }
    md.figure(fig.name, "test accuracy with and without BN, and the training loss, against steps for the three input scalings");
    md.figure(grad_fig.name, "weight gradient norm per layer at initialization");

    // The verdict, from the numbers above.
    auto range_of = [&](const char* model, const char* recipe) {
      double lo = INFINITY, hi = -INFINITY;
      bool any_diverged = false;
      for (InputScale s : kScales) {
        const std::string k = std::string(model) + recipe + input_scale_name(s);
        if (diverged.count(k) || finals[k].empty()) {
          any_diverged = true;
          continue;
        }
        lo = std::min(lo, mean(finals[k]));
        hi = std::max(hi, mean(finals[k]));
      }
      return std::pair{any_diverged ? INFINITY : hi - lo, lo};
    };
    std::string verdict;
    bool bn_irrelevant = true, nobn_depends = false;
    for (const RecipeLabel& recipe : kRecipes) {
      const auto [bn_range, bn_low] = range_of("seed", recipe.name);
      const auto [plain_range, plain_low] = range_of("seed-nobn", recipe.name);
      bn_irrelevant = bn_irrelevant && bn_range <= 0.5;
      nobn_depends = nobn_depends || plain_range >= 1.0;
      verdict += "At " + recipe_label(recipe) + " BN's final accuracies over the three scalings lie within " +
                 (std::isfinite(bn_range) ? fixed(bn_range, 2) + " points" : std::string("— (a run diverged)")) +
                 "; without BN within " +
                 (std::isfinite(plain_range) ? fixed(plain_range, 2) + " points" : std::string("— (a run diverged)")) + ". ";
    }
    // The size of the first gradient on raw pixels against [0, 1], per model (the first weight's).
    auto raw_over_unit = [&](const char* model) {
      const auto raw = t.where("run", grad_key(model, InputScale::Raw)), unit = t.where("run", grad_key(model, InputScale::Unit));
      return raw.empty() || unit.empty() ? std::nan("") : t.number(*raw.front(), "grad_norm") / t.number(*unit.front(), "grad_norm");
    };
    verdict += "BN's three training-loss curves agree to " + fixed(100 * early_loss_gap, 1) + "% in the first " +
               fixed(kSameSteps, 0) + " steps (seed 1; the same function of the weights, eps aside) and drift apart later "
               "as any two runs whose rounding differs do (at most " + fixed(100 * loss_gap, 1) + "% at a point). In eval mode "
               "their test accuracies differ by up to " + fixed(early_gap, 1) + " points in the first " + fixed(kWarmup, 0) +
               " steps and by " + fixed(late_gap, 1) + " after: the running variance starts at 1 and forgets that start "
               "by a factor 0.9 per step (momentum 0.1), and 1 is near conv1's variance only for some scalings (the "
               "running statistics, unlike the batch statistics, are not scale-free). ";
    verdict += "Without BN the scaling sets the size of every gradient: on raw pixels conv1's first gradient is " +
               fixed(raw_over_unit("seed-nobn"), 0) + " times its size on [0, 1] (with BN " + fixed(raw_over_unit("seed"), 3) +
               " times), so one learning rate cannot suit both; the ratio between the layers' gradients changes less (" +
               fixed(spread["seed-nobn" + std::string("raw")], 0) + ", " + fixed(spread["seed-nobn" + std::string("unit")], 0) +
               " and " + fixed(spread["seed-nobn" + std::string("standardize")], 0) + " from the largest to the smallest). ";
    verdict += bn_irrelevant && nobn_depends
                   ? "**Held**: with BN the input's scale is irrelevant here (the first BN removes it, as the algebra says), "
                     "while the network without BN depends on it (its final accuracies spread by a point or more)."
               : bn_irrelevant ? "**Held in part**: with BN the scale is irrelevant, but without BN it did not matter by "
                                 "1 point either at this budget."
                               : "**Not held** at this budget: BN's runs differ by more than half a point across scalings.";
    md.paragraph("**Verdict.** " + verdict +
                 " The budget is short of the example's 14 epochs; with BN the three runs compute the same function "
                 "of the weights (eps aside), so more steps would not separate them, while the runs without BN may "
                 "close part of their gap given time.");
    std::vector<std::string> figures = render(fig, ctx.out_dir);
    for (const std::string& f : render(grad_fig, ctx.out_dir)) figures.push_back(f);
    return {md.text(), figures};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_input_normalization() { return std::make_unique<InputNormalizationExperiment>(); }

}  // namespace bnlab::experiments
