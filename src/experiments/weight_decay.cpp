// weight-decay: with BN after it, a layer's weights have no scale of their own (van Laarhoven
// 2017, "L2 Regularization versus Batch and Weight Normalization"; Zhang et al. 2019, "Three
// Mechanisms of Weight Decay Regularization"). Multiplying them by 10 leaves the outputs as they
// are and divides their gradient by 10, so an SGD step moves their direction by lr/||w||^2: the
// effective learning rate. Without weight decay ||w|| only grows and the effective rate decays;
// weight decay shrinks ||w|| until the two balance, at an effective rate set by lr * wd. Here:
// the x10 check on the tutorial's network (a measurement, not an assumption), the weight norms
// and effective rates through training, and a grid of lr and wd at equal products.
#include <algorithm>
#include <cmath>
#include <map>

#include "bnlab/loss.h"
#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

constexpr int64_t kBatch = 64;
constexpr double kMomentum = 0.9;
constexpr float kScale = 10.0f;
constexpr uint64_t kDropoutKey = 0x5ca1e;  // the same dropout masks before and after scaling
// The seed network's weights: the first three feed a BN, fc2 feeds LogSoftmax.
const char* const kLayers[] = {"conv1", "conv2", "fc1", "fc2"};
bool feeds_batchnorm(const std::string& layer) { return layer != "fc2"; }
constexpr const char* kTracked = "conv2";  // the layer the through-training figure shows

std::string grid_key(double lr, double product, int64_t seed) {
  return "lr" + field(lr) + "/lrwd" + field(product) + "/s" + std::to_string(seed);
}

double norm_of(const TensorView& v) {
  double s = 0;
  const float* p = static_cast<const float*>(v.data);
  for (int64_t i = 0; i < numel(v.shape); ++i) s += static_cast<double>(p[i]) * p[i];
  return std::sqrt(s);
}

// Log-probabilities and each weight's gradient norm of one training-mode step on the first kBatch
// training images, with fixed dropout masks.
struct StepResult {
  std::vector<float> logp;
  std::map<std::string, double> grad_norm;  // of each layer's weight
};
StepResult one_step(Network& net, const DataSource& data) {
  const int64_t n = std::min(kBatch, data.train.count), classes = numel(net.output_shape());
  net.reserve(n);
  std::vector<float> x(static_cast<size_t>(n * data.train.height * data.train.width)), dlogp(static_cast<size_t>(n * classes));
  std::vector<uint8_t> labels(static_cast<size_t>(n));
  std::vector<int64_t> indices(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) indices[static_cast<size_t>(i)] = i;
  gather_batch(x.data(), labels.data(), data.train, data, indices.data(), n);
  const float* logp = net.forward(x.data(), n, {.mode = Mode::Train, .random_key = kDropoutKey});
  StepResult r{{logp, logp + n * classes}, {}};
  nll_loss(dlogp.data(), logp, labels.data(), n, classes);
  net.zero_grad();
  net.backward(dlogp.data(), n);
  for (const TensorView& g : net.named_gradients())
    if (g.name.ends_with(".weight") && g.shape.size() >= 2) r.grad_norm[g.name.substr(0, g.name.find('.'))] = norm_of(g);
  return r;
}

class WeightDecay final : public Experiment {
 public:
  std::string_view name() const override { return "weight-decay"; }
  std::string_view summary() const override {
    return "scale invariance of the layers before BN (x10), weight norms and lr/||w||^2 through training, an lr x wd grid";
  }
  int64_t default_steps() const override { return 400; }
  std::vector<FlagInfo> flags() const override {
    return {{"lrs", "SGD learning rates of the grid (momentum 0.9)", "0.01,0.03,0.1,0.3", false},
            {"products", "lr x weight decay of the grid, each at every learning rate (0: no weight decay)", "0,1e-4,1e-3,3e-3", false}};
  }
  std::vector<std::string> columns() const override { return {"run", "lr", "lr_wd", "seed", "step", "layer", "metric", "value"}; }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    const std::vector<double> lrs = ctx.flag_numbers("lrs", 1e-6, 10), products = ctx.flag_numbers("products", 0, 1);
    std::vector<PlannedRun> runs;
    runs.push_back({"invariance", [&ctx](const ProgressFn&) { return invariance(ctx); }});
    for (double lr : lrs)
      for (double product : products)
        for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
          runs.push_back({grid_key(lr, product, seed), [&ctx, lr, product, seed](const ProgressFn& p) { return train(ctx, lr, product, seed, p); }});
    return runs;
  }

  // Each layer's weight and bias times 10, one layer at a time, against the network as it is.
  static RunOutput invariance(const Context& ctx) {
    const DataSource& data = *ctx.data;
    Network base = build_model(model_text("seed"), "seed", data, 1);
    const StepResult before = one_step(base, data);
    std::vector<Row> rows;
    double worst_invariant = 0;
    for (const char* layer : kLayers) {
      Network net = build_model(model_text("seed"), "seed", data, 1);
      for (const TensorView& v : net.state_dict()) {
        if (v.name != std::string(layer) + ".weight" && v.name != std::string(layer) + ".bias") continue;
        float* p = static_cast<float*>(v.data);
        std::for_each(p, p + numel(v.shape), [](float& w) { w *= kScale; });
      }
      const StepResult after = one_step(net, data);
      double change = 0;
      for (size_t i = 0; i < after.logp.size(); ++i) change = std::max(change, static_cast<double>(std::abs(after.logp[i] - before.logp[i])));
      const double ratio = after.grad_norm.at(layer) / before.grad_norm.at(layer);
      if (feeds_batchnorm(layer)) worst_invariant = std::max(worst_invariant, change);
      auto add = [&](const char* metric, double value) { rows.push_back({"invariance", "nan", "nan", "1", "0", layer, metric, field(value)}); };
      add("feeds_batchnorm", feeds_batchnorm(layer) ? 1 : 0);
      add("output_change", change);
      add("grad_ratio", ratio);
    }
    return {rows, "largest output change of a layer before BN: " + field(worst_invariant)};
  }

  static RunOutput train(const Context& ctx, double lr, double product, int64_t seed, const ProgressFn& progress) {
    const uint64_t s = static_cast<uint64_t>(seed);
    Network net = build_model(model_text("seed"), "seed", *ctx.data, s);
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch,
                           .optimizer = {.kind = OptimizerKind::SGD, .lr = lr, .weight_decay = product / lr, .momentum = kMomentum},
                           .seed = s, .eval_every = ctx.options.eval_every};
    const std::string key = grid_key(lr, product, seed);
    std::vector<Row> rows;
    auto add = [&](int64_t step, const std::string& layer, const char* metric, double value) {
      rows.push_back({key, field(lr), field(product), field(seed), field(step), layer, metric, field(value)});
    };
    // The weight norms at every evaluation (the weights are those the curve point evaluates).
    const auto measure = [&](int64_t step) {
      for (const TensorView& v : net.named_parameters()) {
        if (!v.name.ends_with(".weight") || v.shape.size() < 2) continue;
        const std::string layer = v.name.substr(0, v.name.find('.'));
        const double w = norm_of(v);
        add(step, layer, "weight_norm", w);
        add(step, layer, "effective_lr", lr / (w * w));
      }
    };
    const LoopResult r = train_steps(net, *ctx.data, loop, progress, {.at_eval = measure});
    for (const CurvePoint& p : r.curve)
      if (std::isfinite(p.test_accuracy)) add(p.step, "", "test_accuracy", p.test_accuracy);
    if (r.diverged_at > 0) add(r.diverged_at, "", "diverged", 1);
    else add(r.steps_done, "", "final_accuracy", r.final_test.accuracy());
    return {rows, outcome(r)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    const std::vector<double> lrs = ctx.flag_numbers("lrs", 1e-6, 10), products = ctx.flag_numbers("products", 0, 1);
    const int64_t last = ctx.options.steps;
    // Mean over seeds of `metric` of (lr, product) at `step` (and `layer`); NaN if none.
    auto value = [&](double lr, double product, const std::string& metric, int64_t step, const std::string& layer = "") {
      std::vector<double> v;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
        for (const Row* r : t.where("run", grid_key(lr, product, seed)))
          if (t.text(*r, "metric") == metric && t.text(*r, "layer") == layer && (step < 0 || t.number(*r, "step") == step))
            v.push_back(t.number(*r, "value"));
      return mean(v);
    };
    // A run that diverged or ended at chance (weight decay so strong that every weight went to 0).
    constexpr double kChance = 20;
    auto collapsed = [&](double lr, double product) {
      return std::isfinite(value(lr, product, "diverged", -1)) || !(value(lr, product, "final_accuracy", -1) > kChance);
    };
    Markdown md("Weight decay and batch normalization: scale invariance and the effective learning rate");
    md.paragraph(settings_paragraph(
        ctx, "The tutorial's network (`seed`). The x10 check: from the same initialization and the first 64 training "
             "images with the same dropout masks, one training-mode step with one layer's weight and bias multiplied "
             "by 10. The grid: SGD with momentum 0.9, weight decay (PyTorch's coupled L2, on every parameter) wd = "
             "product / lr for each product at every learning rate, batches of 64, " + std::to_string(last) +
             " steps per run; the weight norms are measured at every evaluation (every " +
             std::to_string(ctx.options.eval_every) + " steps)."));

    std::vector<std::vector<std::string>> inv;
    double worst_invariant = 0, fc2_change = 0, worst_ratio = 0;
    for (const char* layer : kLayers) {
      double change = std::nan(""), ratio = std::nan("");
      for (const Row* r : t.where("run", "invariance")) {
        if (t.text(*r, "layer") != layer) continue;
        if (t.text(*r, "metric") == "output_change") change = t.number(*r, "value");
        if (t.text(*r, "metric") == "grad_ratio") ratio = t.number(*r, "value");
      }
      if (feeds_batchnorm(layer)) {
        worst_invariant = std::max(worst_invariant, change);
        worst_ratio = std::max(worst_ratio, std::abs(ratio * kScale - 1));
      } else {
        fc2_change = change;
      }
      inv.push_back({layer, feeds_batchnorm(layer) ? "BatchNorm" : "LogSoftmax", fixed(change, 7), fixed(ratio, 5)});
    }
    md.paragraph("The x10 check (a layer before BN: the same outputs, the gradient divided by 10):");
    md.table({"layer", "feeds", "largest change of a log-probability", "gradient norm after / before"}, inv);

    // Final accuracy and final effective learning rate of the tracked layer per (lr, product).
    std::vector<std::string> header = {"lr"};
    for (double c : products) header.push_back(c == 0 ? "no weight decay" : "lr x wd = " + field(c));
    std::vector<std::vector<std::string>> acc_table, eff_table;
    for (double lr : lrs) {
      std::vector<std::string> a = {field(lr)}, e = {field(lr)};
      for (double c : products) {
        const double diverged = value(lr, c, "diverged", -1);
        a.push_back(std::isfinite(diverged) ? "diverged" : fixed(value(lr, c, "final_accuracy", -1), 2) + " (wd " + field(c / lr) + ")");
        e.push_back(collapsed(lr, c) ? "— (collapsed)" : fixed(value(lr, c, "effective_lr", last, kTracked), 4));
      }
      acc_table.push_back(a);
      eff_table.push_back(e);
    }
    md.paragraph("Final test accuracy (%), whole test set:");
    md.table(header, acc_table);
    md.paragraph(std::string("Effective learning rate lr / ||w||^2 of ") + kTracked + ".weight after the last step:");
    md.table(header, eff_table);

    // Through training at one learning rate (the one nearest 0.1): norm and effective rate.
    const double shown_lr = *std::min_element(lrs.begin(), lrs.end(), [](double a, double b) { return std::abs(std::log(a / 0.1)) < std::abs(std::log(b / 0.1)); });
    Figure fig{.name = "weight-decay", .title = "Weight decay with BN: the weight norm, the effective learning rate, and lr x wd",
               .rows = 2, .cols = 2, .width = 1100, .height = 820, .panels = {}};
    Panel norm{.title = std::string("(a) ||w|| of ") + kTracked + ".weight, lr " + field(shown_lr),
               .xlabel = "training step", .ylabel = "weight norm", .key = "top left"};
    Panel eff{.title = std::string("(b) effective learning rate lr / ||w||^2 of ") + kTracked + ", lr " + field(shown_lr),
              .xlabel = "training step", .ylabel = "lr / ||w||^2", .logy = true, .key = "bottom left"};
    for (size_t ci = 0; ci < products.size(); ++ci) {
      Series n{.title = products[ci] == 0 ? "no weight decay" : "wd " + field(products[ci] / shown_lr), .color = static_cast<int>(ci) + 1};
      Series e = n;
      for (const Row* r : t.where("run", grid_key(shown_lr, products[ci], 1))) {
        if (t.text(*r, "layer") != kTracked) continue;
        Series& s = t.text(*r, "metric") == "weight_norm" ? n : e;
        s.x.push_back(t.number(*r, "step"));
        s.y.push_back(t.number(*r, "value"));
      }
      norm.series.push_back(std::move(n));
      eff.series.push_back(std::move(e));
    }
    // Against the product: if lr x wd is what matters, the learning rates' lines lie on each other.
    Panel eff_grid{.title = "(c) final effective learning rate of " + std::string(kTracked) + " against lr x wd",
                   .xlabel = "lr x wd", .ylabel = "lr / ||w||^2 after the last step", .logx = true, .logy = true, .key = "top left"};
    Panel acc_grid{.title = "(d) final test accuracy against lr x wd", .xlabel = "lr x wd", .ylabel = "test accuracy (%)",
                   .logx = true, .key = "bottom left"};
    for (size_t li = 0; li < lrs.size(); ++li) {
      Series e{.title = "lr " + field(lrs[li]), .style = Style::LinesPoints, .color = static_cast<int>(li) + 1};
      Series a = e;
      for (double c : products) {
        if (c == 0 || collapsed(lrs[li], c)) continue;
        e.x.push_back(c);
        e.y.push_back(value(lrs[li], c, "effective_lr", last, kTracked));
        a.x.push_back(c);
        a.y.push_back(value(lrs[li], c, "final_accuracy", -1));
      }
      eff_grid.series.push_back(std::move(e));
      acc_grid.series.push_back(std::move(a));
    }
    fig.panels = {norm, eff, eff_grid, acc_grid};
    md.figure(fig.name, "weight norm and effective learning rate through training; final effective rate and accuracy against lr x wd");

    // How much the effective rate varies with lr at one product, against with the product at one lr.
    // Largest ratio of the final effective rates (and largest accuracy gap) between runs that share
    // the product, and between runs that share the learning rate; collapsed runs left out.
    double across_lr = 1, across_product = 1, acc_across_lr = 0, acc_across_product = 0;
    std::vector<std::string> collapsed_runs;
    auto widen = [&](const std::vector<std::pair<double, double>>& runs, double& ratio, double& gap) {
      std::vector<double> eff, acc;
      for (const auto& [lr, c] : runs) {
        if (collapsed(lr, c)) continue;
        eff.push_back(value(lr, c, "effective_lr", last, kTracked));
        acc.push_back(value(lr, c, "final_accuracy", -1));
      }
      if (eff.size() < 2) return;
      ratio = std::max(ratio, *std::max_element(eff.begin(), eff.end()) / *std::min_element(eff.begin(), eff.end()));
      gap = std::max(gap, *std::max_element(acc.begin(), acc.end()) - *std::min_element(acc.begin(), acc.end()));
    };
    for (double c : products) {
      if (c == 0) continue;
      std::vector<std::pair<double, double>> runs;
      for (double lr : lrs) {
        runs.push_back({lr, c});
        if (collapsed(lr, c)) collapsed_runs.push_back("lr " + field(lr) + " with wd " + field(c / lr));
      }
      widen(runs, across_lr, acc_across_lr);
    }
    for (double lr : lrs) {
      std::vector<std::pair<double, double>> runs;
      for (double c : products)
        if (c > 0) runs.push_back({lr, c});
      widen(runs, across_product, acc_across_product);
    }
    const double w0 = value(shown_lr, 0, "weight_norm", 0, kTracked), w_end = value(shown_lr, 0, "weight_norm", last, kTracked);
    std::string verdict = "Multiplying a layer before BN by 10 changes the log-probabilities by at most " + fixed(worst_invariant, 6) +
                          " (eps's share of the variance changes) and divides its gradient by 10 to " +
                          fixed(100 * worst_ratio, 4) + "%; the same for fc2, which feeds LogSoftmax, changes them by " +
                          fixed(fc2_change, 2) +
                          (worst_invariant < 1e-3 && worst_ratio < 1e-2 && fc2_change > 0.1 ? ": **scale invariance held**. "
                                                                                              : ": **scale invariance not shown** by these numbers. ") +
                          (std::isfinite(w0) ? "Without weight decay ||" + std::string(kTracked) + ".weight|| went from " +
                                                   fixed(w0, 3) + " to " + fixed(w_end, 3) + " at lr " + field(shown_lr) +
                                                   ", so its effective learning rate fell by " +
                                                   fixed(w_end * w_end / (w0 * w0), 2) + "x. "
                                             : std::string()) +
                          "After " + std::to_string(last) + " steps the final effective rate varies by up to " +
                          fixed(across_lr, 1) + "x between learning rates at the same lr x wd, and by up to " +
                          fixed(across_product, 1) + "x between products at the same learning rate" +
                          (collapsed_runs.empty() ? std::string() : " (left out: " + std::to_string(collapsed_runs.size()) +
                                                                        " run(s) that collapsed to chance, weight decay shrinking every weight to 0: the first " +
                                                                        collapsed_runs.front() + ")") + ": ";
    verdict += across_lr < across_product
                   ? "**the product mattered more than the learning rate alone**, as the equilibrium argument says"
                   : "**the product did not (yet) decide it**: the learning rate alone mattered as much";
    // Each run with decay against the run without it at the same learning rate (both finished).
    int lowered = 0, raised = 0, compared = 0;
    const bool has_plain = std::find(products.begin(), products.end(), 0.0) != products.end();
    for (double lr : lrs) {
      const double plain = has_plain ? value(lr, 0, "final_accuracy", -1) : std::nan("");
      for (double c : products) {
        const double decayed = value(lr, c, "final_accuracy", -1);
        if (c == 0 || !std::isfinite(plain) || !std::isfinite(decayed)) continue;
        ++compared;
        lowered += decayed < plain;
        raised += decayed > plain;
      }
    }
    verdict += ". The accuracy follows less closely: at the same product the final accuracies differ by up to " +
               fixed(acc_across_lr, 2) + " points, at the same learning rate by up to " + fixed(acc_across_product, 2);
    verdict += compared == 0
                   ? std::string("; no run without weight decay at a learning rate of the grid to compare with")
                   : ". Against no decay at the same learning rate, decay lowered the final accuracy in " + std::to_string(lowered) +
                         " of " + std::to_string(compared) + " runs and raised it in " + std::to_string(raised) +
                         (lowered > raised ? " (a run this short hardly overfits, so decay has little to prevent)"
                                           : raised > lowered ? " (within this budget decay already helped)" : "");
    verdict += ". The equilibrium ||w|| is reached after about 1 / (2 lr wd) steps (van Laarhoven), " +
               std::string("so within this budget only the largest products get there; the smaller ones still carry "
                           "their initialization, where lr alone sets the effective rate. fc2 and BN's own parameters "
                           "are not scale invariant, which weight decay affects differently.");
    md.paragraph("**Verdict.** " + verdict);
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_weight_decay() { return std::make_unique<WeightDecay>(); }

}  // namespace bnlab::experiments
