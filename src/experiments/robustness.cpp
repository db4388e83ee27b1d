// robustness: is a network with BN more fragile to perturbed inputs? Galloway et al. (2019,
// "Batch Normalization is a Cause of Adversarial Vulnerability") found BN networks less robust
// to Gaussian noise and to small adversarial perturbations at equal clean accuracy. The
// tutorial's network with BN (seed) and without (seed-nobn), trained alike, tested in eval mode
// on Gaussian noise and on the fast gradient sign method (FGSM) at several strengths, in pixel
// units of [0, 1].
#include <algorithm>
#include <cmath>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/rng.h"
#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/perturb.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

constexpr int64_t kBatch = 64;
const char* const kModels[] = {"seed", "seed-nobn"};
constexpr double kSmallest = 1e-6;  // strengths are positive: 0 is the clean row

std::string key(const char* model, int64_t seed) { return std::string(model) + "/s" + std::to_string(seed); }

struct Score {
  double accuracy = 0, loss = 0;  // percent; mean NLL
};

// Accuracy and loss of the first `images` test images, each batch perturbed by `perturb`
// (pixels, labels, indices, n) before an eval-mode forward.
template <typename Perturb>
Score score(Network& net, const DataSource& data, int64_t images, const Perturb& perturb) {
  const int64_t classes = net.output_shape().back();
  std::vector<int64_t> indices(kBatch);
  std::vector<float> pixels, scratch;
  std::vector<uint8_t> labels;
  double loss = 0;
  int64_t right = 0;
  for (int64_t begin = 0; begin < images; begin += kBatch) {
    const int64_t n = std::min(kBatch, images - begin);
    std::iota(indices.begin(), indices.begin() + n, begin);
    gather_pixels(pixels, labels, data.test, indices.data(), n);
    perturb(pixels, labels, indices.data(), n);
    const float* logp = forward_pixels(net, data, pixels, n, scratch);
    loss += nll_loss(nullptr, logp, labels.data(), n, classes) * static_cast<double>(n);
    right += count_correct(logp, labels.data(), n, classes);
  }
  return {100.0 * static_cast<double>(right) / static_cast<double>(images), loss / static_cast<double>(images)};
}

class Robustness final : public Experiment {
 public:
  std::string_view name() const override { return "robustness"; }
  std::string_view summary() const override {
    return "seed vs seed-nobn in eval mode under Gaussian noise and FGSM at several strengths";
  }
  int64_t default_steps() const override { return 938; }  // one epoch of the example's recipe
  int64_t default_seeds() const override { return 3; }
  std::vector<FlagInfo> flags() const override {
    return {{"noise", "standard deviations of the Gaussian noise, in pixel units of [0, 1]", "0.1,0.2,0.3,0.4,0.6,0.8", true},
            {"eps", "FGSM step sizes, in pixel units of [0, 1]", "0.01,0.02,0.05,0.1,0.15,0.2,0.3", true},
            {"test-images", "test images per measurement (the first N)", "2000", true}};
  }
  std::vector<std::string> columns() const override {
    return {"run", "model", "seed", "attack", "strength", "accuracy", "loss"};
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    ctx.flag_numbers("noise", kSmallest, 10);
    ctx.flag_numbers("eps", kSmallest, 1);
    const int64_t images = ctx.flag_integer("test-images", 1, 10000);
    if (images > ctx.data->test.count)
      fail("experiment", "--test-images", std::to_string(images) + " is more than the " +
                                              std::to_string(ctx.data->test.count) + " test images");
    std::vector<PlannedRun> runs;
    for (const char* model : kModels)
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
        runs.push_back({key(model, seed), [&ctx, model, seed](const ProgressFn& p) { return run(ctx, model, seed, p); }});
    return runs;
  }

  static RunOutput run(const Context& ctx, const char* model, int64_t seed, const ProgressFn& progress) {
    const DataSource& data = *ctx.data;
    const uint64_t s = static_cast<uint64_t>(seed);
    Network net = build_model(model_text(model), model, data, s);
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch,
                           .optimizer = {.kind = OptimizerKind::Adadelta, .lr = 1.0}, .seed = s,
                           .eval_every = ctx.options.eval_every, .final_full_test = false};
    const LoopResult trained = train_steps(net, data, loop, progress);
    std::vector<Row> rows;
    if (trained.diverged_at > 0) {
      rows.push_back({key(model, seed), model, field(seed), "diverged", field(trained.diverged_at), "nan", "nan"});
      return {rows, outcome(trained)};
    }
    net.reserve(kBatch);
    const int64_t images = ctx.flag_integer("test-images", 1, 10000);
    const int64_t pixels = data.test.height * data.test.width;
    auto add = [&](const char* attack, double strength, const Score& sc) {
      rows.push_back({key(model, seed), model, field(seed), attack, field(strength), field(sc.accuracy), field(sc.loss)});
    };
    const Score clean = score(net, data, images, [](auto&&...) {});
    add("clean", 0, clean);
    // The noise is the same for both models and every seed (its key depends on nothing else).
    for (double sigma : ctx.flag_numbers("noise", kSmallest, 10))
      add("gaussian", sigma, score(net, data, images, [&](std::vector<float>& p, const std::vector<uint8_t>&, const int64_t* idx, int64_t n) {
            add_gaussian_noise(p, idx, n, pixels, sigma, 0x6a055);
          }));
    Score last = clean;
    for (double eps : ctx.flag_numbers("eps", kSmallest, 1)) {
      last = score(net, data, images, [&](std::vector<float>& p, const std::vector<uint8_t>& labels, const int64_t*, int64_t n) {
        fgsm_step(p, pixel_gradient(net, data, p, labels, n), eps);
      });
      add("fgsm", eps, last);
    }
    return {rows, fixed(clean.accuracy, 2) + "% clean, " + fixed(last.accuracy, 2) + "% after the last FGSM step size"};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    // Mean accuracy over seeds of (model, attack, strength).
    auto accuracies = [&](const char* model, const std::string& attack, double strength) {
      std::vector<double> v;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
        for (const Row* r : t.where("run", key(model, seed)))
          if (t.text(*r, "attack") == attack && t.number(*r, "strength") == strength) v.push_back(t.number(*r, "accuracy"));
      return v;
    };
    const std::vector<double> noise = ctx.flag_numbers("noise", kSmallest, 10), eps = ctx.flag_numbers("eps", kSmallest, 1);
    Markdown md("Robustness: Gaussian noise and FGSM with and without BN");
    md.paragraph(settings_paragraph(
        ctx, "`seed` (BN) and `seed-nobn`, Adadelta lr 1.0, batches of 64, " + std::to_string(ctx.options.steps) +
                 " steps per run; then, in eval mode, the first " + ctx.flag("test-images") +
                 " test images with Gaussian noise of standard deviation sigma and with one FGSM step of size eps "
                 "(x + eps * sign of the loss gradient with respect to the input), both in pixel units of [0, 1] and "
                 "clipped to [0, 1] before the usual normalization. The noise draws are the same for every model."));
    auto acc = [&](const char* model, const std::string& attack, double x) { return mean(accuracies(model, attack, x)); };
    // The loss of accuracy from clean: what compares models of different clean accuracy.
    auto drop = [&](const char* model, const std::string& attack, double x) {
      return acc(model, "clean", 0) - acc(model, attack, x);
    };
    std::vector<std::vector<std::string>> table;
    auto add_rows = [&](const std::string& attack, const char* label, const std::vector<double>& strengths) {
      for (double x : strengths)
        table.push_back({label, field(x), mean_pm(accuracies("seed", attack, x), 2), mean_pm(accuracies("seed-nobn", attack, x), 2),
                         fixed(drop("seed", attack, x), 2), fixed(drop("seed-nobn", attack, x), 2)});
    };
    add_rows("clean", "none", {0});
    add_rows("gaussian", "Gaussian noise, sigma", noise);
    add_rows("fgsm", "FGSM, eps", eps);
    md.table({"perturbation", "strength", "seed (BN) accuracy (%)", "seed-nobn accuracy (%)", "BN: points lost from clean",
              "no BN: points lost from clean"},
             table);
    md.paragraph("Mean ± standard deviation over " + std::to_string(ctx.options.seeds) +
                 (ctx.options.seeds == 1 ? " seed." : " seeds."));

    // The verdict: where BN loses more than a point more than the network without it.
    auto count_worse = [&](const std::string& attack, const std::vector<double>& xs, double& worst) {
      int worse = 0;
      worst = -INFINITY;
      for (double x : xs) {
        const double extra = drop("seed", attack, x) - drop("seed-nobn", attack, x);
        worse += extra > 1;
        worst = std::max(worst, extra);
      }
      return worse;
    };
    double worst_noise = 0, worst_fgsm = 0;
    const int noise_worse = count_worse("gaussian", noise, worst_noise), fgsm_worse = count_worse("fgsm", eps, worst_fgsm);
    auto extra_text = [](double worst) {
      return worst > 0 ? "at most " + fixed(worst, 2) + " points more" : std::string("never more");
    };
    const double clean_gap = acc("seed", "clean", 0) - acc("seed-nobn", "clean", 0);
    md.heading("Verdict");
    md.paragraph(
        "Clean, BN is " + fixed(std::abs(clean_gap), 2) + " points " + (clean_gap >= 0 ? "ahead" : "behind") +
        ". Under Gaussian noise the BN network loses over a point more accuracy than the one without BN at " +
        std::to_string(noise_worse) + " of " + std::to_string(noise.size()) + " strengths (" + extra_text(worst_noise) +
        "); under FGSM at " + std::to_string(fgsm_worse) + " of " + std::to_string(eps.size()) + " (" +
        extra_text(worst_fgsm) + "). " +
        (noise_worse + fgsm_worse > static_cast<int>(noise.size() + eps.size()) / 2
             ? "**Held**: BN makes this network more fragile to perturbed inputs, as Galloway et al. report."
         : noise_worse + fgsm_worse > 0
             ? "**Held in part**: BN loses more under some perturbations, not all."
             : "**Not held** here: the BN network does not lose more accuracy than the one without BN at this budget.") +
        " FGSM's gradient is each model's own (a white-box attack), so the two columns face different perturbations "
        "of the same size; Gaussian noise is the same for both.");

    Figure fig{.name = "robustness",
               .title = "Eval-mode accuracy on perturbed " + data_title(*ctx.data) + " test images, with and without BN",
               .rows = 1, .cols = 2, .width = 1100, .height = 480, .panels = {}};
    auto panel = [&](const std::string& attack, const std::string& title, const std::string& xlabel, const std::vector<double>& xs) {
      Panel p{.title = title, .xlabel = xlabel, .ylabel = "test accuracy (%)", .ymin = 0, .ymax = 100, .key = "bottom left"};
      int color = 0;
      for (const char* model : kModels) {
        Series s{.title = std::string(model) + (std::string(model) == "seed" ? " (BN)" : " (no BN)"),
                 .style = Style::ErrorBars, .color = ++color};
        std::vector<double> all = {0};
        all.insert(all.end(), xs.begin(), xs.end());
        for (double x : all) {
          const std::vector<double> v = accuracies(model, x == 0 ? std::string("clean") : attack, x);
          if (v.empty()) continue;
          s.x.push_back(x);
          s.y.push_back(mean(v));
          s.err.push_back(stddev(v));
        }
        Series line = s;
        line.title = "";
        line.style = Style::LinesPoints;
        line.err.clear();
        p.series.push_back(std::move(line));
        p.series.push_back(std::move(s));
      }
      return p;
    };
    fig.panels = {panel("gaussian", "(a) Gaussian noise", "noise standard deviation sigma (pixels in [0, 1])", noise),
                  panel("fgsm", "(b) FGSM, one step", "step size eps (pixels in [0, 1])", eps)};
    md.figure(fig.name, "accuracy against the strength of Gaussian noise and of FGSM, with and without BN");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_robustness() { return std::make_unique<Robustness>(); }

}  // namespace bnlab::experiments
