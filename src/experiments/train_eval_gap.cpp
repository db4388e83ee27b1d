// train-eval-gap: BN normalizes with batch statistics in training and with running averages in
// evaluation, and the two can disagree. Wu & Johnson (2021, "Rethinking 'Batch' in BatchNorm",
// sec. 3) compare the exponential moving average (EMA, PyTorch's running statistics) with
// "precise BN", statistics recomputed over many batches with the weights fixed, through
// training: the EMA lags weights that move fast. Li et al. (2019, "Understanding the Disharmony
// between Dropout and Batch Normalization by Variance Shift") show that a Dropout before a BN
// makes the BN's running variance, collected with dropout on, larger than the variance it sees in
// evaluation, with dropout off. The tutorial's network has exactly that: Dropout(0.25) feeds fc1
// and its BatchNorm1d. Here: the EMA against precise BN (recalibrated with dropout as in training
// and with dropout off) at the example's recipe and at a high learning rate, the ratio of each
// fc1 channel's variance in evaluation and in training to its running variance, and the same
// network with the Dropout moved after fc1's BN and ReLU.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/recalibrate.h"
#include "bnlab/train.h"
#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

constexpr int64_t kBatch = 64;
constexpr int64_t kCurveImages = 2000;  // the curves' test subset, as the loop's
constexpr uint64_t kProbeKey = 0x7a1e;  // dropout masks of the training-mode variance probe
const char* const kVariants[] = {"seed", "dropout-after-bn"};
const char* const kVariantLabels[] = {"Dropout before fc1 (the tutorial's)", "Dropout after fc1's BN and ReLU"};

const Recipe kRecipes[] = {
    {"adadelta", "Adadelta, lr 1.0 (the PyTorch example)", {.kind = OptimizerKind::Adadelta, .lr = 1.0}},
    {"sgd-lr1", "SGD, lr 1.0 (a high learning rate)", {.kind = OptimizerKind::SGD, .lr = 1.0}},
};

// The seed network, or the same with its Dropout line moved after fc1's BN and ReLU.
std::string variant_text(const std::string& variant) {
  std::string text = model_text("seed");
  if (variant == "seed") return text;
  const size_t dropout = text.find("dropout1:");
  if (dropout == std::string::npos || text.find("fc1_bn:") == std::string::npos)
    fail("train-eval-gap", "spec", "the seed spec has no dropout1 or fc1_bn");
  const size_t end = text.find('\n', dropout) + 1;
  const std::string line = text.substr(dropout, end - dropout);
  text.erase(dropout, end - dropout);
  const size_t bn = text.find("fc1_bn:");
  const size_t relu = text.find('\n', text.find('\n', bn) + 1) + 1;  // the line after fc1_bn's: its ReLU
  text.insert(relu, line);
  return text;
}

std::string key(const std::string& recipe, const std::string& variant, int64_t seed) {
  return recipe + "/" + variant + "/s" + std::to_string(seed);
}

// Test accuracy with statistics recalibrated over `batches` training batches (dropout as in
// training, or off), the network's own running statistics and counters put back afterwards.
double precise_accuracy(Network& net, const DataSource& data, const Dataset& test, int64_t batches, DropoutMode dropout) {
  const std::vector<float> buffers(net.buffers().begin(), net.buffers().end());
  const std::vector<int64_t> counters(net.counters().begin(), net.counters().end());
  recalibrate_batchnorm(net, data, {.batches = batches, .batch_size = kBatch, .dropout = dropout, .seed = 1});
  const double accuracy = evaluate(net, test, data, 1000).accuracy();
  std::copy(buffers.begin(), buffers.end(), net.buffers().begin());
  std::copy(counters.begin(), counters.end(), net.counters().begin());
  return accuracy;
}

// Each fc1 channel's variance (within batches of 64, unbiased, averaged over the batches as BN's
// running_var averages them) over the first `images` test images, in eval mode or in training
// mode with dropout, divided by fc1_bn's running variance. Runs on a copy: `net` is untouched.
std::vector<double> variance_ratios(Network& net, const std::string& text, const DataSource& data, int64_t images, Mode mode) {
  Network probe = build_model(text, "probe", data, 1);
  std::copy(net.parameters().begin(), net.parameters().end(), probe.parameters().begin());
  std::copy(net.buffers().begin(), net.buffers().end(), probe.buffers().begin());
  std::vector<double> running;
  for (const TensorView& v : probe.state_dict())
    if (v.name == "fc1_bn.running_var") running.assign(static_cast<const float*>(v.data), static_cast<const float*>(v.data) + numel(v.shape));
  size_t fc1 = probe.layer_count();
  for (size_t i = 0; i < probe.layer_count(); ++i)
    if (probe.layer_name(i) == "fc1") fc1 = i;
  if (fc1 == probe.layer_count() || running.empty()) fail("train-eval-gap", "spec", "no fc1 and fc1_bn");
  probe.reserve(kBatch, {.fusion = Fusion::None});  // fc1's own output kept for every sample
  const int64_t channels = static_cast<int64_t>(running.size()), pixels = data.test.height * data.test.width;
  std::vector<double> variance(running.size(), 0.0);
  std::vector<float> x(static_cast<size_t>(kBatch * pixels));
  std::vector<uint8_t> labels(kBatch);
  std::vector<int64_t> indices(kBatch);
  int64_t batches = 0;
  for (int64_t begin = 0; begin + kBatch <= images; begin += kBatch, ++batches) {
    std::iota(indices.begin(), indices.end(), begin);
    gather_batch(x.data(), labels.data(), data.test, data, indices.data(), kBatch);
    probe.forward(x.data(), kBatch, {.mode = mode, .random_key = kProbeKey + static_cast<uint64_t>(batches)});
    const float* y = probe.activation(fc1);
    for (int64_t c = 0; c < channels; ++c) {
      double sum = 0, squares = 0;
      for (int64_t i = 0; i < kBatch; ++i) sum += y[i * channels + c];
      const double m = sum / kBatch;
      for (int64_t i = 0; i < kBatch; ++i) squares += (y[i * channels + c] - m) * (y[i * channels + c] - m);
      variance[static_cast<size_t>(c)] += squares / (kBatch - 1);
    }
  }
  for (size_t c = 0; c < variance.size(); ++c) variance[c] = variance[c] / static_cast<double>(batches) / running[c];
  return variance;
}

class TrainEvalGap final : public Experiment {
 public:
  std::string_view name() const override { return "train-eval-gap"; }
  std::string_view summary() const override {
    return "EMA running statistics vs precise BN through training; dropout's variance shift at fc1's BatchNorm1d";
  }
  int64_t default_steps() const override { return 600; }
  std::vector<FlagInfo> flags() const override {
    return {{"precise-batches", "training batches of 64 that each precise-BN recalibration averages", "20", true}};
  }
  std::vector<std::string> columns() const override { return {"run", "recipe", "variant", "seed", "step", "channel", "metric", "value"}; }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    const int64_t batches = ctx.flag_integer("precise-batches", 1, 10000);
    check_recalibration(*ctx.data, {.batches = batches, .batch_size = kBatch}, "experiment: --precise-batches");
    std::vector<PlannedRun> runs;
    for (const Recipe& recipe : kRecipes)
      for (const char* variant : kVariants)
        for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
          runs.push_back({key(recipe.name, variant, seed), [&ctx, &recipe, variant, seed](const ProgressFn& p) { return run(ctx, recipe, variant, seed, p); }});
    return runs;
  }

  static RunOutput run(const Context& ctx, const Recipe& recipe, const std::string& variant, int64_t seed, const ProgressFn& progress) {
    const DataSource& data = *ctx.data;
    const uint64_t s = static_cast<uint64_t>(seed);
    const std::string text = variant_text(variant), k = key(recipe.name, variant, seed);
    const int64_t batches = ctx.flag_integer("precise-batches", 1, 10000);
    Network net = build_model(text, variant, data, s);
    const Dataset subset = first_samples(data.test, kCurveImages);
    std::vector<Row> rows;
    auto add = [&](int64_t step, const std::string& channel, const char* metric, double value) {
      rows.push_back({k, recipe.name, variant, field(seed), field(step), channel, metric, field(value)});
    };
    const auto measure = [&](int64_t step) {
      add(step, "", "acc_precise", precise_accuracy(net, data, subset, batches, DropoutMode::AsMode));
      add(step, "", "acc_precise_dropout_off", precise_accuracy(net, data, subset, batches, DropoutMode::Off));
    };
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch, .optimizer = recipe.optimizer, .seed = s,
                           .eval_every = ctx.options.eval_every, .eval_images = kCurveImages};
    const LoopResult r = train_steps(net, data, loop, progress, {.at_eval = measure});
    for (const CurvePoint& p : r.curve)
      if (std::isfinite(p.test_accuracy)) add(p.step, "", "acc_ema", p.test_accuracy);
    if (r.diverged_at > 0) {
      add(r.diverged_at, "", "diverged", 1);
      return {rows, outcome(r)};
    }
    const int64_t last = r.steps_done;
    add(last, "", "final_ema", r.final_test.accuracy());
    add(last, "", "final_precise", precise_accuracy(net, data, data.test, batches, DropoutMode::AsMode));
    add(last, "", "final_precise_dropout_off", precise_accuracy(net, data, data.test, batches, DropoutMode::Off));
    const int64_t images = std::min(kCurveImages, data.test.count);
    const std::vector<double> eval_ratio = variance_ratios(net, text, data, images, Mode::Eval);
    const std::vector<double> train_ratio = variance_ratios(net, text, data, images, Mode::Train);
    for (size_t c = 0; c < eval_ratio.size(); ++c) {
      add(last, field(static_cast<int64_t>(c)), "var_ratio_eval", eval_ratio[c]);
      add(last, field(static_cast<int64_t>(c)), "var_ratio_train", train_ratio[c]);
    }
    return {rows, outcome(r) + ", median eval/running variance of fc1 " + fixed(percentile(eval_ratio, 50), 3)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    const int64_t batches = ctx.flag_integer("precise-batches", 1, 10000);
    // Values of `metric` over seeds (every step, or one).
    auto values = [&](const Recipe& recipe, const std::string& variant, const std::string& metric) {
      std::vector<double> v;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
        for (const Row* r : t.where("run", key(recipe.name, variant, seed)))
          if (t.text(*r, "metric") == metric) v.push_back(t.number(*r, "value"));
      return v;
    };
    Markdown md("The gap between training and evaluation: EMA vs precise BN, and dropout's variance shift");
    md.paragraph(settings_paragraph(
        ctx, "The tutorial's network (`seed`: Dropout(0.25) between the conv layers and fc1, so fc1's BatchNorm1d sees "
             "dropped activations in training) and the same with the Dropout moved after fc1's BN and ReLU. Batches of 64, " +
                 std::to_string(ctx.options.steps) + " steps per run, at " + kRecipes[0].label + " and at " + kRecipes[1].label +
                 ". At every evaluation (every " + std::to_string(ctx.options.eval_every) + " steps) the first 2,000 test "
                 "images are classified with the running statistics (EMA, momentum 0.1) and with precise BN: every BN's "
                 "statistics recomputed over " + std::to_string(batches) + " training batches of 64 with the weights fixed "
                 "(`bnlab recalibrate`), once with dropout as in training (PyTorch's update_bn) and once with dropout off "
                 "(Li et al.'s remedy); training goes on with its own running statistics. After the last step the same on "
                 "the whole test set, and the variance of each fc1 output channel over batches of 64 of the first 2,000 test "
                 "images, in eval mode and in training mode (dropout on), divided by fc1_bn's running variance."));
    std::vector<std::vector<std::string>> table;
    std::map<std::string, double> median_eval;  // recipe/variant -> median eval/running ratio
    std::map<std::string, double> gap_early, gap_late;  // recipe/variant -> mean (precise - EMA) in each half
    std::map<std::string, double> off_gain;             // final precise(off) - final EMA
    for (const Recipe& recipe : kRecipes) {
      for (size_t vi = 0; vi < std::size(kVariants); ++vi) {
        const std::string variant = kVariants[vi], id = std::string(recipe.name) + "/" + variant;
        if (!values(recipe, variant, "diverged").empty()) {
          table.push_back({recipe.label, kVariantLabels[vi], "diverged", "", "", "", ""});
          continue;
        }
        const std::vector<double> er = values(recipe, variant, "var_ratio_eval"), tr = values(recipe, variant, "var_ratio_train");
        median_eval[id] = percentile(er, 50);
        const std::vector<double> ema = values(recipe, variant, "final_ema"), pre = values(recipe, variant, "final_precise"),
                                  off = values(recipe, variant, "final_precise_dropout_off");
        off_gain[id] = mean(off) - mean(ema);
        table.push_back({recipe.label, kVariantLabels[vi], mean_pm(ema, 2), mean_pm(pre, 2), mean_pm(off, 2),
                         fixed(percentile(er, 50), 3) + " (" + fixed(percentile(er, 10), 3) + " to " + fixed(percentile(er, 90), 3) + ")",
                         fixed(percentile(tr, 50), 3)});
        // Precise (dropout as in training) minus EMA at each curve point of seed 1, by half of the run.
        std::map<double, double> ema_at, precise_at;
        for (const Row* r : t.where("run", key(recipe.name, variant, 1))) {
          if (t.text(*r, "metric") == "acc_ema") ema_at[t.number(*r, "step")] = t.number(*r, "value");
          if (t.text(*r, "metric") == "acc_precise") precise_at[t.number(*r, "step")] = t.number(*r, "value");
        }
        std::vector<double> early, late;
        for (const auto& [step, p] : precise_at) {
          if (step == 0 || !ema_at.count(step)) continue;
          (step <= static_cast<double>(ctx.options.steps) / 2 ? early : late).push_back(p - ema_at[step]);
        }
        gap_early[id] = mean(early);
        gap_late[id] = mean(late);
      }
    }
    md.table({"recipe", "network", "EMA (%)", "precise BN, dropout on (%)", "precise BN, dropout off (%)",
              "fc1: eval / running variance, median (10th to 90th percentile)", "fc1: training / running variance, median"},
             table);

    Figure fig{.name = "train-eval-gap", .title = "Running averages (EMA) against precise BN, and dropout's variance shift",
               .rows = 2, .cols = 2, .width = 1100, .height = 820, .panels = {}};
    for (const Recipe& recipe : kRecipes) {
      Panel p{.title = std::string("(") + (&recipe == &kRecipes[0] ? "a" : "b") + ") " + recipe.label + ", the tutorial's network",
              .xlabel = "training step (mini-batches of 64)", .ylabel = "test accuracy (%), first 2,000 test images",
              .key = "bottom right"};
      p.ymin = 80;
      p.ymax = 100;
      const std::pair<const char*, const char*> kinds[] = {{"acc_ema", "running statistics (EMA)"},
                                                           {"acc_precise", "precise BN, dropout on"},
                                                           {"acc_precise_dropout_off", "precise BN, dropout off"}};
      int color = 0;
      for (const auto& [metric, label] : kinds) {
        Series s{.title = label, .color = ++color};
        for (const Row* r : t.where("run", key(recipe.name, "seed", 1)))
          if (t.text(*r, "metric") == metric) {
            s.x.push_back(t.number(*r, "step"));
            s.y.push_back(t.number(*r, "value"));
          }
        p.series.push_back(std::move(s));
      }
      fig.panels.push_back(std::move(p));
    }
    for (const char* metric : {"var_ratio_eval", "var_ratio_train"}) {
      const bool eval = std::string(metric) == "var_ratio_eval";
      Panel p{.title = eval ? "(c) fc1 channels: variance in evaluation / running variance"
                            : "(d) fc1 channels: variance in training (dropout on) / running variance",
              .xlabel = "fc1 channel, sorted by the ratio", .ylabel = "variance ratio", .key = "top left"};
      int color = 0;
      for (const Recipe& recipe : kRecipes) {
        for (size_t vi = 0; vi < std::size(kVariants); ++vi) {
          std::vector<double> v = values(recipe, kVariants[vi], metric);
          std::sort(v.begin(), v.end());
          Series s{.title = std::string(recipe.name == std::string("adadelta") ? "Adadelta, " : "SGD lr 1, ") +
                            (vi == 0 ? "dropout before fc1" : "dropout after BN"),
                   .style = vi == 0 ? Style::Lines : Style::Dashed, .color = ++color};
          for (size_t i = 0; i < v.size(); ++i) {
            s.x.push_back(static_cast<double>(i));
            s.y.push_back(v[i]);
          }
          p.series.push_back(std::move(s));
        }
      }
      fig.panels.push_back(std::move(p));
    }
    md.figure(fig.name, "EMA against precise BN through training; fc1's variance ratios per channel");

    const std::string a = std::string(kRecipes[0].name) + "/seed", b = std::string(kRecipes[1].name) + "/seed";
    const std::string a_after = std::string(kRecipes[0].name) + "/dropout-after-bn", b_after = std::string(kRecipes[1].name) + "/dropout-after-bn";
    std::string verdict =
        "**EMA against precise BN** (Wu & Johnson): precise BN (dropout on) is ahead of the running statistics by " +
        fixed(gap_early[a], 2) + " points on average over the first half of the run and " + fixed(gap_late[a], 2) +
        " over the second at the example's recipe, by " + fixed(gap_early[b], 2) + " and " + fixed(gap_late[b], 2) +
        " at SGD lr 1.0. ";
    verdict += gap_early[b] > gap_early[a] && gap_early[b] > 0.1
                   ? "**Held**: the EMA lags more where the weights move faster (the high learning rate, early). "
                   : "**Not held** at this budget: the EMA does not lag precise BN more at the high learning rate. ";
    verdict += "**Variance shift** (Li et al.): in evaluation fc1's channels have a median " + fixed(median_eval[a], 3) +
               " (Adadelta) and " + fixed(median_eval[b], 3) + " (SGD) of their running variance with the Dropout before "
               "fc1, and " + fixed(median_eval[a_after], 3) + " and " + fixed(median_eval[b_after], 3) +
               " with it after the BN; ";
    const bool shift = median_eval[a] < 0.95 && median_eval[b] < 0.95;
    verdict += shift ? "**held**: dropout inflates the variance BN's running statistics collect, and eval-mode BN then "
                       "shrinks those channels. "
                     : "**not held** here: the running variance is not larger than evaluation's by 5% or more. ";
    verdict += "Recalibrating with dropout off changes the final accuracy by " + fixed(off_gain[a], 2) + " (Adadelta) and " +
               fixed(off_gain[b], 2) + " points (SGD) against the EMA; moving the Dropout after BN, by construction, "
               "leaves fc1's BN nothing to shift. " + std::to_string(ctx.options.seeds) +
               (ctx.options.seeds == 1 ? " seed" : " seeds (the curves and their gaps are seed 1's)") + " and " +
               std::to_string(ctx.options.steps) + " steps: differences of a few tenths of a point are within noise.";
    md.paragraph("**Verdict.** " + verdict);
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_train_eval_gap() { return std::make_unique<TrainEvalGap>(); }

}  // namespace bnlab::experiments
