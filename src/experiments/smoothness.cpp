// smoothness: Santurkar et al. (2018, "How Does Batch Normalization Help Optimization?").
// (a) Figure 2: "noisy BN", BN followed by noise that shifts and scales every channel afresh at
// every step (ChannelNoise), trains about as well as BN, so BN's benefit is not that it keeps
// the layers' input distributions still. (b) Figure 4: along the gradient direction, the loss
// varies less and the gradient changes less ("beta-smoothness") with BN. The probes run on the
// step's training batch and put the weights, gradients and running statistics back.
#include <algorithm>
#include <cmath>

#include "bnlab/loss.h"
#include "bnlab/rng.h"
#include "bnlab/train_step.h"
#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

constexpr int64_t kBatch = 64;
constexpr const char* kNoise = " ChannelNoise shift=0.5 scale=1.5";
// "Trains about as well as BN": noisy BN's final accuracy at most this many points below BN's.
constexpr double kNoisyMargin = 0.5;

// The tutorial's network with BN (seed), without (seed-nobn), and with noise after each BN.
std::string net_text(const std::string& model) {
  if (model != "noisy-bn") return model_text(model);
  std::string text;
  size_t start = 0;
  const std::string seed = model_text("seed");
  while (start < seed.size()) {
    const size_t end = std::min(seed.find('\n', start), seed.size());
    const std::string line = seed.substr(start, end - start);
    text += line + "\n";
    if (line.find("BatchNorm") != std::string::npos) text += std::string(kNoise).substr(1) + "\n";
    start = end + 1;
  }
  return text;
}

std::string key(const std::string& part, const std::string& model, int64_t seed) {
  return part + "/" + model + "/s" + std::to_string(seed);
}

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// The loss and its gradient on one training batch in training mode with dropout key `key`.
double loss_and_gradient(Network& net, const std::vector<float>& x, const std::vector<uint8_t>& labels, int64_t n,
                         uint64_t key, std::vector<float>& gradient) {
  net.zero_grad();
  const float* logp = net.forward(x.data(), n, {.mode = Mode::Train, .random_key = key, .backward_follows = true});
  const int64_t classes = net.output_shape().back();
  std::vector<float> dlogp(static_cast<size_t>(n * classes));
  const double loss = nll_loss(dlogp.data(), logp, labels.data(), n, classes);
  net.backward(dlogp.data(), n);
  gradient.assign(net.gradients().begin(), net.gradients().end());
  return loss;
}

struct Landscape {
  double loss_range = 0;   // max - min of the loss over the step sizes (and 0)
  double grad_change = 0;  // max over the step sizes of ||g(w - eta g) - g(w)||
  double beta = 0;         // max over the step sizes of that change / ||eta g||
  double grad_norm = 0;    // ||g(w)||
};

// Moves the weights along -g by each of `etas` and measures the loss and the gradient there;
// then puts back the weights, the gradients and every running statistic as they were.
Landscape probe(Network& net, const std::vector<float>& x, const std::vector<uint8_t>& labels, int64_t n, uint64_t key,
                const std::vector<double>& etas) {
  const std::vector<float> weights(net.parameters().begin(), net.parameters().end());
  const std::vector<float> grads(net.gradients().begin(), net.gradients().end());
  const std::vector<float> buffers(net.buffers().begin(), net.buffers().end());
  const std::vector<int64_t> counters(net.counters().begin(), net.counters().end());
  std::vector<float> g0, g;
  const double l0 = loss_and_gradient(net, x, labels, n, key, g0);
  Landscape r{.grad_norm = norm(g0)};
  double lo = l0, hi = l0;
  for (double eta : etas) {
    std::span<float> w = net.parameters();
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(weights[i] - eta * g0[i]);
    const double l = loss_and_gradient(net, x, labels, n, key, g);
    lo = std::min(lo, l);
    hi = std::max(hi, l);
    for (size_t i = 0; i < g.size(); ++i) g[i] -= g0[i];
    const double change = norm(g);
    r.grad_change = std::max(r.grad_change, change);
    if (r.grad_norm > 0) r.beta = std::max(r.beta, change / (eta * r.grad_norm));
  }
  r.loss_range = std::isfinite(hi - lo) ? hi - lo : INFINITY;
  std::copy(weights.begin(), weights.end(), net.parameters().begin());
  std::copy(grads.begin(), grads.end(), net.gradients().begin());
  std::copy(buffers.begin(), buffers.end(), net.buffers().begin());
  std::copy(counters.begin(), counters.end(), net.counters().begin());
  return r;
}

const char* const kNoiseModels[] = {"seed", "noisy-bn", "seed-nobn"};
const char* const kLandscapeModels[] = {"seed", "seed-nobn"};

std::string label(const std::string& model) {
  if (model == "seed") return "BN (seed)";
  if (model == "noisy-bn") return "noisy BN";
  return "no BN (seed-nobn)";
}

class Smoothness final : public Experiment {
 public:
  std::string_view name() const override { return "smoothness"; }
  std::string_view summary() const override {
    return "noisy BN vs BN vs none (Santurkar Fig. 2); loss and gradient change along the gradient, with and without BN (Fig. 4)";
  }
  int64_t default_steps() const override { return 938; }
  std::vector<FlagInfo> flags() const override {
    return {{"etas", "step sizes along the gradient for the landscape probes", "0.05,0.1,0.2,0.4", true},
            {"probe-every", "steps between landscape probes (0: none)", "25", true},
            {"lr", "SGD learning rate of the landscape runs", "0.1", true}};
  }
  std::vector<std::string> columns() const override { return {"run", "model", "part", "seed", "step", "metric", "value"}; }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    ctx.flag_numbers("etas", 1e-6, 100);
    ctx.flag_integer("probe-every", 0, 1000000);
    ctx.flag_number("lr", 1e-6, 100);
    std::vector<PlannedRun> runs;
    for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
      for (const char* model : kNoiseModels)
        runs.push_back({key("noise", model, seed), [&ctx, model, seed](const ProgressFn& p) { return noise_run(ctx, model, seed, p); }});
      for (const char* model : kLandscapeModels)
        runs.push_back({key("landscape", model, seed),
                        [&ctx, model, seed](const ProgressFn& p) { return landscape_run(ctx, model, seed, p); }});
    }
    return runs;
  }

  static void add_curve(std::vector<Row>& rows, const std::string& k, const std::string& model, const std::string& part,
                        int64_t seed, const LoopResult& r) {
    for (const CurvePoint& p : r.curve) {
      rows.push_back({k, model, part, field(seed), field(p.step), "train_loss", field(p.train_loss)});
      rows.push_back({k, model, part, field(seed), field(p.step), "test_accuracy", field(p.test_accuracy)});
    }
    if (r.diverged_at > 0) rows.push_back({k, model, part, field(seed), field(r.diverged_at), "diverged", "1"});
    if (r.final_test.count > 0)
      rows.push_back({k, model, part, field(seed), field(r.steps_done), "final_accuracy", field(r.final_test.accuracy())});
  }

  static RunOutput noise_run(const Context& ctx, const std::string& model, int64_t seed, const ProgressFn& progress) {
    Network net = build_model(net_text(model), model, *ctx.data, static_cast<uint64_t>(seed));
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch,
                           .optimizer = {.kind = OptimizerKind::Adadelta, .lr = 1.0},
                           .seed = static_cast<uint64_t>(seed), .eval_every = ctx.options.eval_every};
    const LoopResult r = train_steps(net, *ctx.data, loop, progress);
    std::vector<Row> rows;
    add_curve(rows, key("noise", model, seed), model, "noise", seed, r);
    return {rows, outcome(r)};
  }

  static RunOutput landscape_run(const Context& ctx, const std::string& model, int64_t seed, const ProgressFn& progress) {
    const DataSource& data = *ctx.data;
    const uint64_t s = static_cast<uint64_t>(seed);
    Network net = build_model(net_text(model), model, data, s);
    const int64_t every = ctx.flag_integer("probe-every", 0, 1000000);
    const std::vector<double> etas = ctx.flag_numbers("etas", 1e-6, 100);
    const std::string k = key("landscape", model, seed);
    std::vector<Row> rows;
    // The step's batch, as the loop draws it (shuffle_epoch from the seed, full batches).
    std::vector<int64_t> order(static_cast<size_t>(data.train.count));
    int64_t order_epoch = -1;
    std::vector<float> x(static_cast<size_t>(kBatch * data.train.height * data.train.width));
    std::vector<uint8_t> labels(kBatch);
    Hooks hooks;
    hooks.after_backward = [&](int64_t step, int64_t n) {
      if (every == 0 || (step != 1 && step % every != 0)) return;
      const int64_t per_epoch = data.train.count / kBatch, epoch = (step - 1) / per_epoch;
      if (epoch != order_epoch) shuffle_epoch(order, s, order_epoch = epoch);
      gather_batch(x.data(), labels.data(), data.train, data, order.data() + ((step - 1) % per_epoch) * kBatch, n);
      const Landscape l = probe(net, x, labels, n, random_bits(s, 0x5a00 + static_cast<uint64_t>(step)), etas);
      for (const auto& [metric, value] : {std::pair<const char*, double>{"loss_range", l.loss_range},
                                          {"grad_change", l.grad_change}, {"beta", l.beta}, {"grad_norm", l.grad_norm}})
        rows.push_back({k, model, "landscape", field(seed), field(step), metric, field(value)});
    };
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch,
                           .optimizer = {.kind = OptimizerKind::SGD, .lr = ctx.flag_number("lr", 1e-6, 100)},
                           .seed = s, .eval_every = ctx.options.eval_every};
    const LoopResult r = train_steps(net, data, loop, progress, hooks);
    add_curve(rows, k, model, "landscape", seed, r);
    return {rows, outcome(r)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    auto values = [&](const std::string& part, const std::string& model, const std::string& metric) {
      std::vector<double> v;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
        for (const Row* r : t.where("run", key(part, model, seed)))
          if (t.text(*r, "metric") == metric && !std::isnan(t.number(*r, "value"))) v.push_back(t.number(*r, "value"));
      return v;
    };
    Markdown md("Smoothness: noisy BN and the loss landscape along the gradient");
    md.paragraph(settings_paragraph(
        ctx, "The tutorial's network, batches of 64, " + std::to_string(ctx.options.steps) +
                 " steps per run. (a) Adadelta lr 1.0 for BN, no BN and *noisy BN*: after every BN a ChannelNoise layer "
                 "scales each channel by s ~ U(1, 1.5) and shifts it by m ~ U(-0.5, 0.5), drawn afresh every step, the "
                 "same for every sample of the batch; in eval it scales by the mean, 1.25. (b) plain SGD at lr " + ctx.flag("lr") + " for BN and no BN; every " +
                 ctx.flag("probe-every") + " steps, on the step's own batch (training mode, one dropout mask), the loss "
                 "and gradient at w - eta g for eta in {" + ctx.flag("etas") + "}, then the weights, gradients and "
                 "running statistics put back."));
    md.heading("(a) Noisy BN (Santurkar et al., Figure 2)");
    std::vector<std::vector<std::string>> noise_table;
    for (const char* model : kNoiseModels) {
      const std::vector<double> loss = values("noise", model, "train_loss");
      noise_table.push_back({label(model), mean_pm(values("noise", model, "final_accuracy"), 2),
                             loss.empty() ? "n/a" : fixed(loss.back(), 4)});
    }
    md.table({"network", "final test accuracy (%)", "training loss, last interval"}, noise_table);
    const double bn = mean(values("noise", "seed", "final_accuracy")), noisy = mean(values("noise", "noisy-bn", "final_accuracy")),
                 plain = mean(values("noise", "seed-nobn", "final_accuracy"));
    const std::string margin = fixed(kNoisyMargin, 1) + "-point margin";
    const std::string against_plain = std::string(noisy > plain ? "ahead of" : "not ahead of") + " no BN (" + fixed(plain, 2) + "%)";
    md.paragraph(noisy >= bn - kNoisyMargin
                     ? "**Held**: noisy BN trains to " + fixed(noisy, 2) + "%, " +
                           (noisy >= bn ? "no lower than BN (" + fixed(bn, 2) + "%)"
                                        : fixed(bn - noisy, 2) + " points below BN (" + fixed(bn, 2) + "%)") +
                           ", within the " + margin + ", and " + against_plain +
                           ", although its layers' input distributions move every step."
                     : "**Not held** here: noisy BN (" + fixed(noisy, 2) + "%) falls " + fixed(bn - noisy, 2) +
                           " points behind BN (" + fixed(bn, 2) + "%), outside the " + margin + "; it is " + against_plain + ".");

    md.heading("(b) Along the gradient (Santurkar et al., Figure 4)");
    std::vector<std::vector<std::string>> land_table;
    for (const char* model : kLandscapeModels)
      land_table.push_back({label(model), fixed(percentile(values("landscape", model, "loss_range"), 50), 4),
                            fixed(percentile(values("landscape", model, "grad_change"), 50), 4),
                            fixed(percentile(values("landscape", model, "beta"), 50), 3),
                            mean_pm(values("landscape", model, "final_accuracy"), 2)});
    md.table({"network", "median loss range", "median gradient change", "median beta-smoothness", "final test accuracy (%)"},
             land_table);
    const double range_bn = percentile(values("landscape", "seed", "loss_range"), 50),
                 range_plain = percentile(values("landscape", "seed-nobn", "loss_range"), 50),
                 beta_bn = percentile(values("landscape", "seed", "beta"), 50),
                 beta_plain = percentile(values("landscape", "seed-nobn", "beta"), 50);
    // A measure counts as smoother with BN when its median is at least 1.2 times smaller.
    auto compare = [](const char* what, double with_bn, double without) {
      const double ratio = without / with_bn;
      return std::string(what) + " " + fixed(with_bn, 4) + " with BN, " + fixed(without, 4) + " without (" +
             (ratio >= 1.2 ? fixed(ratio, 1) + " times smaller with BN" : ratio <= 1 / 1.2 ? "larger with BN" : "about the same") + ")";
    };
    const int smoother = (range_plain / range_bn >= 1.2) + (beta_plain / beta_bn >= 1.2);
    md.paragraph("Medians over the probes of the whole run: " + compare("loss range", range_bn, range_plain) + "; " +
                 compare("beta", beta_bn, beta_plain) + ". " +
                 (smoother == 2   ? "**Held**: the landscape is smoother with BN by both measures."
                  : smoother == 1 ? "**Held in part**: smoother with BN by one measure only."
                                  : "**Not held** here: not smoother with BN by either measure.") +
                 " The networks' gradients differ in size, so the same step sizes move them different distances: "
                 "beta divides the gradient's change by the distance moved, the loss range does not.");

    Figure noise_fig{.name = "smoothness-noise", .title = "Noisy BN: BN followed by a random shift and scale per channel, every step",
                     .rows = 1, .cols = 2, .width = 1100, .height = 460, .panels = {}};
    Figure land_fig{.name = "smoothness-landscape", .title = "Along the gradient direction, SGD lr " + ctx.flag("lr"),
                    .rows = 1, .cols = 3, .width = 1350, .height = 440, .panels = {}};
    Panel acc{.title = "(a) test accuracy", .xlabel = "training step", .ylabel = "test accuracy (%), first 2,000 test images",
              .ymin = 90, .ymax = 100, .key = "bottom right"};
    Panel loss{.title = "(b) training loss", .xlabel = "training step", .ylabel = "training loss (NLL)", .logy = true,
               .key = "top right"};
    int color = 0;
    for (const char* model : kNoiseModels) {
      ++color;
      for (const char* metric : {"test_accuracy", "train_loss"}) {
        Series s{.title = label(model), .color = color};
        for (const Row* r : t.where("run", key("noise", model, 1))) {
          if (t.text(*r, "metric") != metric || std::isnan(t.number(*r, "value"))) continue;
          s.x.push_back(t.number(*r, "step"));
          s.y.push_back(t.number(*r, "value"));
        }
        (std::string(metric) == "test_accuracy" ? acc : loss).series.push_back(std::move(s));
      }
    }
    noise_fig.panels = {acc, loss};
    const std::pair<const char*, const char*> land_metrics[] = {
        {"loss_range", "(a) loss range over the step sizes"}, {"grad_change", "(b) max ||g(w - eta g) - g(w)||"},
        {"beta", "(c) beta-smoothness: change / ||eta g||"}};
    for (const auto& [metric, title] : land_metrics) {
      Panel p{.title = title, .xlabel = "training step", .ylabel = metric, .logy = true, .key = "top right"};
      int c = 0;
      for (const char* model : kLandscapeModels) {
        Series s{.title = label(model), .style = Style::Lines, .color = ++c == 2 ? 3 : 1};
        for (const Row* r : t.where("run", key("landscape", model, 1))) {
          if (t.text(*r, "metric") != metric || !(t.number(*r, "value") > 0)) continue;
          s.x.push_back(t.number(*r, "step"));
          s.y.push_back(t.number(*r, "value"));
        }
        p.series.push_back(std::move(s));
      }
      land_fig.panels.push_back(std::move(p));
    }
    md.figure(noise_fig.name, "test accuracy and training loss of BN, noisy BN and no BN");
    md.figure(land_fig.name, "loss range, gradient change and beta-smoothness along the gradient, with and without BN");
    std::vector<std::string> files = render(noise_fig, ctx.out_dir);
    for (const std::string& f : render(land_fig, ctx.out_dir)) files.push_back(f);
    return {md.text(), files};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_smoothness() { return std::make_unique<Smoothness>(); }

}  // namespace bnlab::experiments
