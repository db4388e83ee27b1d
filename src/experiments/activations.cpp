// activations: does BN keep each layer's inputs at a stable scale? The tutorial's network with
// (seed) and without BN (seed-nobn), Adadelta lr 1.0: every few steps, the mean and standard
// deviation of the input of each ReLU over the training batch (all samples, channels and
// positions), and for the BN network also of the input of each BN (the conv/linear output).
// Unfused on purpose: with BN+ReLU fused, the BN's saved output would be the ReLU's.
#include <algorithm>
#include <cmath>

#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

const char* const kModels[] = {"seed-nobn", "seed"};

std::string key(const char* model, int64_t seed) { return std::string(model) + "/s" + std::to_string(seed); }

bool is_bn(const Layer& l) { return l.type() == "BatchNorm1d" || l.type() == "BatchNorm2d"; }

class Activations final : public Experiment {
 public:
  std::string_view name() const override { return "activations"; }
  std::string_view summary() const override {
    return "seed vs seed-nobn: mean and std of each ReLU's input (and each BN's input) over training";
  }
  int64_t default_steps() const override { return 938; }
  int64_t default_eval_every(int64_t steps) const override { return std::max<int64_t>(1, steps / 50); }
  std::vector<std::string> columns() const override {
    return {"run", "model", "seed", "step", "relu", "point", "layer", "mean", "std"};
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    std::vector<PlannedRun> runs;
    for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
      for (const char* model : kModels)
        runs.push_back({key(model, seed), [&ctx, model, seed](const ProgressFn& p) { return train(ctx, model, seed, p); }});
    return runs;
  }

  static RunOutput train(const Context& ctx, const char* model, int64_t seed, const ProgressFn& progress) {
    Network net = build_model(model_text(model), model, *ctx.data, static_cast<uint64_t>(seed));
    std::vector<Row> rows;
    auto record = [&](int64_t step, int64_t n, size_t relu, const char* point, size_t layer) {
      const Moments m = moments(net.activation(layer), n * numel(net.output_shape(layer)));
      rows.push_back({key(model, seed), model, field(seed), field(step), field(static_cast<int64_t>(relu)), point,
                      net.layer_name(layer), field(m.mean), field(m.std)});
    };
    const int64_t every = ctx.options.eval_every;
    const LoopOptions loop{.steps = ctx.options.steps, .optimizer = {.kind = OptimizerKind::Adadelta, .lr = 1.0},
                           .seed = static_cast<uint64_t>(seed), .eval_every = 0,
                           .fusion = Fusion::None};  // each ReLU's input is its BatchNorm's own output
    const Hooks hooks{.after_backward = [&](int64_t step, int64_t n) {
      if (step != 1 && step % every != 0) return;
      size_t relu = 0;
      for (size_t i = 1; i < net.layer_count(); ++i) {
        if (net.layer(i).type() != "ReLU") continue;
        record(step, n, ++relu, "relu_input", i - 1);
        if (is_bn(net.layer(i - 1)) && i >= 2) record(step, n, relu, "bn_input", i - 2);
      }
    }};
    const LoopResult r = train_steps(net, *ctx.data, loop, progress, hooks);
    return {rows, outcome(r)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    Markdown md("Scale of the pre-activations during training, with and without BN");
    md.paragraph(settings_paragraph(ctx, "Adadelta lr 1.0, batch 64; statistics over the training batch of step 1 and "
                                         "every " + std::to_string(ctx.options.eval_every) + " steps (seed 1 in the figure)."));
    Figure fig{.name = "activations", .title = "Inputs of the nonlinearities in the tutorial's network during training",
               .rows = 2, .cols = 3, .width = 1500, .height = 850, .panels = {}};
    struct Column {
      const char* model;
      const char* point;
      const char* title;
    };
    const Column cols[] = {{"seed-nobn", "relu_input", "no BN: input of each ReLU"},
                           {"seed", "relu_input", "BN: input of each ReLU (= BN output)"},
                           {"seed", "bn_input", "BN: input of each BN (conv/linear output)"}};
    std::vector<std::vector<std::string>> table;
    for (int row = 0; row < 2; ++row) {
      for (const Column& c : cols) {
        Panel p{.title = c.title, .xlabel = "training step", .ylabel = row == 0 ? "mean" : "standard deviation",
                .logy = row == 1, .key = "top right"};
        for (int64_t relu = 1; relu <= 3; ++relu) {
          Series s{.title = "", .color = static_cast<int>(relu)};
          double first = std::nan(""), last = std::nan("");
          for (const Row* r : t.where("run", key(c.model, 1))) {
            if (t.text(*r, "point") != c.point || t.number(*r, "relu") != static_cast<double>(relu)) continue;
            s.title = "ReLU " + std::to_string(relu) + " (" + t.text(*r, "layer") + ")";
            const double v = t.number(*r, row == 0 ? "mean" : "std");
            s.x.push_back(t.number(*r, "step"));
            s.y.push_back(v);
            if (std::isnan(first)) first = v;
            last = v;
          }
          if (row == 1 && !s.x.empty()) {
            table.push_back({c.title, s.title, fixed(first, 3), fixed(last, 3), fixed(last / first, 2)});
          }
          p.series.push_back(std::move(s));
        }
        fig.panels.push_back(std::move(p));
      }
    }
    // One y range per row, so that the three columns compare at a glance.
    for (int row = 0; row < 2; ++row) {
      double lo = 1e300, hi = -1e300;
      for (int c = 0; c < 3; ++c)
        for (const Series& s : fig.panels[row * 3 + c].series)
          for (double y : s.y)
            if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y);
      if (lo > hi) continue;
      const double span = hi - lo + 1e-3;  // room above the curves for the legend
      for (int c = 0; c < 3; ++c) {
        Panel& p = fig.panels[row * 3 + c];
        p.ymin = row == 0 ? lo - 0.05 * span : lo / 1.5;
        p.ymax = row == 0 ? hi + 0.4 * span : hi * 4;
      }
    }
    md.table({"where", "layer", "std at step 1", "std at the end", "ratio"}, table);
    md.figure(fig.name, "mean and standard deviation of the pre-activations against steps");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_activations() { return std::make_unique<Activations>(); }

}  // namespace bnlab::experiments
