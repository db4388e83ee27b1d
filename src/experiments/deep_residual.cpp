// deep-residual: residual networks of over 100 layers (the tutorial's words) and what lets them
// train: BN, or an initialization that keeps each residual branch small. He et al. 2016's CIFAR
// ResNets (6n+2 layers: a 3x3 convolution, three stages of n blocks with 16, 32 and 64 channels,
// each block two 3x3 convolutions, a stage's first block striding by 2 with He's zero-padding
// shortcut, then global average pooling and a Linear layer) on Fashion-MNIST, in four variants:
//   bn        conv, BN, ReLU, conv, BN in each branch (He et al. 2016)
//   none      the same without any normalization
//   skipinit  none, with a learnable scalar started at 0 at the end of each branch (De & Smith 2020)
//   fixup     none, with Fixup's initialization (Zhang et al. 2019): each branch's last convolution
//             and the classifier at zero, the others He-normal scaled by L^(-1/2) for L blocks of
//             m = 2 layers, scalar biases before each convolution and activation and a scalar
//             multiplier at the end of each branch, these scalars trained at a tenth of the learning
//             rate as in the paper's code (under SGD with momentum, their gradients scaled by 0.1
//             before each step: the same update but for weight decay's share; at the full rate
//             their gradient, a sum over every value of the activation, diverges within 50 steps)
// Every convolution starts He-normal (init=kaiming_normal), so that the variants differ only in
// what the papers change. Per run: test accuracy after the budget, and at initialization the
// variance of each block's residual branch f(x) against its skip path on one training batch.
#include <algorithm>
#include <cmath>
#include <map>

#include <cstdio>

#include "bnlab/error.h"
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
constexpr int64_t kCurveImages = 1000;  // curve and final accuracy: the first 1,000 test images (a deep net's
                                        // evaluation costs a third of its training per image)
constexpr int64_t kReferenceDepth = 20;  // --steps is ResNet-20's budget; deeper nets get less
constexpr float kFixupScalarRate = 0.1f;  // Fixup's scalars: a tenth of the learning rate
const char* const kVariants[] = {"bn", "none", "skipinit", "fixup"};
const char* const kVariantLabels[] = {"BN (He et al. 2016)", "no normalization", "SkipInit (De & Smith 2020)",
                                      "Fixup (Zhang et al. 2019)"};
const Recipe kRecipe{"sgd", "SGD, lr 0.1, momentum 0.9, weight decay 1e-4 (He et al. 2016)",
                     {.kind = OptimizerKind::SGD, .lr = 0.1, .weight_decay = 1e-4, .momentum = 0.9}};

// The --depths flag: 6n + 2 layers.
std::vector<int64_t> depths_of(const Context& ctx) {
  const std::vector<int64_t> depths = ctx.flag_integers("depths", 8, 1000);
  for (int64_t d : depths)
    if ((d - 2) % 6 != 0) fail("experiment", "--depths", "has " + std::to_string(d) + ": a CIFAR ResNet has 6n+2 layers (20, 56, 110, ...)");
  return depths;
}

// Steps of a run at `depth`: the same training compute as --steps at ResNet-20 (cost grows with
// depth); the evaluations scale alike.
int64_t steps_at(const Context& ctx, int64_t depth) {
  return std::max<int64_t>(1, ctx.options.steps * kReferenceDepth / depth);
}
int64_t eval_every_at(const Context& ctx, int64_t depth) {
  return std::max<int64_t>(1, ctx.options.eval_every * kReferenceDepth / depth);
}

// "2.3" or "1e+08" for a growth factor.
std::string factor(double v) {
  if (!(v < 1e4)) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2g", v);
    return text;
  }
  return fixed(v, 1);
}

std::string key(const std::string& variant, int64_t depth, int64_t seed) {
  return variant + "/d" + std::to_string(depth) + "/s" + std::to_string(seed);
}

}  // namespace

std::string resnet_text(int64_t depth, const std::string& variant) {
  const int64_t n = (depth - 2) / 6, blocks = 3 * n;
  const bool bn = variant == "bn", fixup = variant == "fixup", skipinit = variant == "skipinit";
  const std::string bias = bn || fixup ? " bias=false" : "";
  char gain[32];
  std::snprintf(gain, sizeof gain, "%.6g", 1.0 / std::sqrt(static_cast<double>(blocks)));  // L^(-1/(2m-2)), m = 2
  std::string t = "stem: Conv2d out_channels=16 kernel_size=3 padding=1 init=kaiming_normal" + bias + "\n";
  t += bn ? "stem_bn: BatchNorm2d\n" : fixup ? "stem_bias: Bias\n" : "";
  t += "stem_relu: ReLU\n";
  int64_t channels = 16;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t width = 16 << stage;
    for (int64_t b = 0; b < n; ++b) {
      const bool down = width != channels;
      std::string name = "s";  // built in steps: GCC 12 warns falsely (-Wrestrict) on "s" + to_string(...)
      name += std::to_string(stage + 1);
      name += 'b';
      name += std::to_string(b + 1);
      const std::string stride = down ? " stride=2" : "";
      const std::string conv = "Conv2d out_channels=" + std::to_string(width) + " kernel_size=3 padding=1";
      t += name + ": Residual" + (down ? " shortcut=pad" : "") + "\n";
      if (fixup) {
        t += "  bias1a: Bias\n  conv1: " + conv + stride + " bias=false init=kaiming_normal init_gain=" + gain +
             "\n  bias1b: Bias\n  relu1: ReLU\n  bias2a: Bias\n  conv2: " + conv +
             " bias=false init=zeros\n  scale: Scale\n  bias2b: Bias\n";
      } else {
        t += "  conv1: " + conv + stride + " init=kaiming_normal" + bias + "\n";
        if (bn) t += "  bn1: BatchNorm2d\n";
        t += "  relu1: ReLU\n  conv2: " + conv + " init=kaiming_normal" + bias + "\n";
        if (bn) t += "  bn2: BatchNorm2d\n";
        if (skipinit) t += "  alpha: Scale init=0\n";
      }
      t += "end\n" + name + "_relu: ReLU\n";
      channels = width;
    }
  }
  t += "pool: AdaptiveAvgPool2d output_size=1\nflat: Flatten\n";
  t += fixup ? "fc_bias: Bias\nfc: Linear out_features=10 init=zeros\n" : "fc: Linear out_features=10\n";
  t += "out: LogSoftmax\n";
  return t;
}

namespace {

struct BlockVariance {
  double branch = 0, skip = 0, output = 0;  // over the batch, all values of the block
};

double variance_of(const std::vector<double>& v) {
  double sum = 0, squares = 0;
  for (double x : v) sum += x;
  const double m = sum / static_cast<double>(v.size());
  for (double x : v) squares += (x - m) * (x - m);
  return squares / static_cast<double>(v.size());
}

// At initialization, one training-mode forward of the first kBatch training images: for each
// block, the variance of its skip path (x, or x sampled and zero-padded), of its branch
// f(x) = y - skip(x), and of y. The network is not changed (no backward, running statistics
// restored).
std::vector<BlockVariance> block_variances(Network& net, const DataSource& data) {
  const std::vector<float> buffers(net.buffers().begin(), net.buffers().end());
  const std::vector<int64_t> counters(net.counters().begin(), net.counters().end());
  net.reserve(kBatch, {.fusion = Fusion::None});
  const int64_t pixels = data.train.height * data.train.width;
  std::vector<float> x(static_cast<size_t>(kBatch * pixels));
  std::vector<uint8_t> labels(kBatch);
  std::vector<int64_t> indices(kBatch);
  for (int64_t i = 0; i < kBatch; ++i) indices[static_cast<size_t>(i)] = i;
  gather_batch(x.data(), labels.data(), data.train, data, indices.data(), kBatch);
  net.forward(x.data(), kBatch, {.mode = Mode::Train});
  std::vector<BlockVariance> out;
  for (size_t i = 1; i < net.layer_count(); ++i) {
    if (net.layer(i).kind() != LayerKind::Residual) continue;
    const Shape in = net.output_shape(i - 1), o = net.output_shape(i);
    const float* xi = net.activation(i - 1);
    const float* y = net.activation(i);
    const int64_t stride = (in[1] + o[1] - 1) / o[1], plane = o[1] * o[2];
    std::vector<double> skip, branch, output;
    for (int64_t s = 0; s < kBatch; ++s)
      for (int64_t c = 0; c < o[0]; ++c)
        for (int64_t h = 0; h < o[1]; ++h)
          for (int64_t w = 0; w < o[2]; ++w) {
            const double sk = c < in[0] ? xi[((s * in[0] + c) * in[1] + h * stride) * in[2] + w * stride] : 0.0;
            const double v = y[(s * o[0] + c) * plane + h * o[2] + w];
            skip.push_back(sk);
            branch.push_back(v - sk);
            output.push_back(v);
          }
    out.push_back({variance_of(branch), variance_of(skip), variance_of(output)});
  }
  std::copy(buffers.begin(), buffers.end(), net.buffers().begin());
  std::copy(counters.begin(), counters.end(), net.counters().begin());
  return out;
}

class DeepResidual final : public Experiment {
 public:
  std::string_view name() const override { return "deep-residual"; }
  std::string_view summary() const override {
    return "CIFAR ResNets of 20 and 56 layers on Fashion-MNIST: BN, none, SkipInit, Fixup; branch variance at init";
  }
  int64_t default_steps() const override { return 600; }
  std::string_view default_data() const override { return "fashion-mnist"; }
  int64_t default_eval_every(int64_t steps) const override { return std::max<int64_t>(1, steps / 2); }
  std::vector<FlagInfo> flags() const override {
    return {{"depths", "layers per ResNet, 6n+2, comma-separated (110 by asking)", "20,56", false}};
  }
  std::vector<std::string> columns() const override {
    return {"run", "variant", "depth", "seed", "steps", "step", "block", "metric", "value"};
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    std::vector<PlannedRun> runs;
    for (int64_t depth : depths_of(ctx))
      for (const char* variant : kVariants)
        for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
          runs.push_back({key(variant, depth, seed), [&ctx, variant, depth, seed](const ProgressFn& p) { return run(ctx, variant, depth, seed, p); }});
    return runs;
  }

  static RunOutput run(const Context& ctx, const std::string& variant, int64_t depth, int64_t seed, const ProgressFn& progress) {
    const DataSource& data = *ctx.data;
    const std::string k = key(variant, depth, seed);
    const int64_t steps = steps_at(ctx, depth);
    Network net = build_model(resnet_text(depth, variant), k, data, static_cast<uint64_t>(seed));
    std::vector<Row> rows;
    auto add = [&](int64_t step, const std::string& block, const char* metric, double value) {
      rows.push_back({k, variant, field(depth), field(seed), field(steps), field(step), block, metric, field(value)});
    };
    const std::vector<BlockVariance> init = block_variances(net, data);
    for (size_t b = 0; b < init.size(); ++b) {
      const std::string block = field(static_cast<int64_t>(b + 1));
      add(0, block, "var_branch", init[b].branch);
      add(0, block, "var_skip", init[b].skip);
      add(0, block, "var_output", init[b].output);
    }
    const LoopOptions loop{.steps = steps, .batch_size = kBatch, .optimizer = kRecipe.optimizer, .seed = static_cast<uint64_t>(seed),
                           .eval_every = eval_every_at(ctx, depth), .eval_images = kCurveImages, .eval_batch = 500,
                           .final_full_test = false};
    Hooks hooks;
    if (variant == "fixup") {
      // The Scale and Bias layers' parameters are the network's only ones of shape [1].
      std::vector<float*> scalars;
      for (const TensorView& g : net.named_gradients())
        if (g.shape == Shape{1}) scalars.push_back(static_cast<float*>(g.data));
      hooks.after_backward = [scalars](int64_t, int64_t) {
        for (float* g : scalars) *g *= kFixupScalarRate;
      };
    }
    const LoopResult r = train_steps(net, data, loop, progress, hooks);
    for (const CurvePoint& p : r.curve)
      if (std::isfinite(p.test_accuracy)) add(p.step, "", "test_accuracy", p.test_accuracy);
    if (r.diverged_at > 0) {
      add(r.diverged_at, "", "diverged", 1);
      return {rows, outcome(r)};
    }
    const double final_accuracy = r.curve.empty() ? NAN : r.curve.back().test_accuracy;
    add(r.steps_done, "", "final_accuracy", final_accuracy);
    add(r.steps_done, "", "seconds", r.seconds);
    return {rows, fixed(final_accuracy, 2) + "% on 1,000 test images after " + std::to_string(steps) + " steps"};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    const std::vector<int64_t> depths = depths_of(ctx);
    auto values = [&](const std::string& variant, int64_t depth, const std::string& metric, const std::string& block = "") {
      std::vector<double> v;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
        for (const Row* r : t.where("run", key(variant, depth, seed)))
          if (t.text(*r, "metric") == metric && (block.empty() || t.text(*r, "block") == block)) v.push_back(t.number(*r, "value"));
      return v;
    };
    std::string steps_text;
    for (int64_t d : depths) steps_text += (steps_text.empty() ? "" : ", ") + std::to_string(steps_at(ctx, d)) + " at " + std::to_string(d) + " layers";
    Markdown md("Deep residual networks: BN, no normalization, SkipInit and Fixup");
    md.paragraph(settings_paragraph(
        ctx, "He et al.'s CIFAR ResNets (6n+2 layers; three stages of 16, 32 and 64 channels; zero-padding shortcuts; "
             "global average pooling) on 28x28 images, every convolution He-normal. " + std::string(kRecipe.label) +
                 ", batches of 64, no warm-up. Steps per run: " + steps_text + " (the same training compute as --steps at "
                 "20 layers, a deeper net's step costing more). Accuracy on the first 1,000 test images. At initialization, "
                 "each block's residual branch f(x) and skip path on the first 64 training images in training mode."));
    std::vector<std::vector<std::string>> table;
    std::map<std::string, double> acc, ratio_last, out_growth;
    for (int64_t d : depths) {
      for (size_t vi = 0; vi < std::size(kVariants); ++vi) {
        const std::string v = kVariants[vi], id = v + "/" + std::to_string(d);
        const std::vector<double> vo = values(v, d, "var_output"), vb = values(v, d, "var_branch"), vs = values(v, d, "var_skip");
        double mean_ratio = NAN;
        if (!vb.empty()) {
          std::vector<double> ratios;
          for (size_t i = 0; i < vb.size(); ++i) ratios.push_back(vs[i] > 0 ? vb[i] / vs[i] : NAN);
          mean_ratio = mean(ratios);
          ratio_last[id] = ratios.back();
          out_growth[id] = vo.back() / vo.front();
        }
        const bool diverged = !values(v, d, "diverged").empty();
        const std::vector<double> a = values(v, d, "final_accuracy"), secs = values(v, d, "seconds");
        acc[id] = diverged || a.empty() ? NAN : mean(a);
        table.push_back({std::to_string(d), kVariantLabels[vi], diverged ? "diverged" : mean_pm(a, 2),
                         fixed(mean_ratio, 3), vo.empty() ? "" : fixed(vo.back() / vo.front(), 3), secs.empty() ? "" : fixed(mean(secs), 0)});
      }
    }
    md.table({"layers", "variant", "test accuracy (%)", "Var f(x) / Var skip, mean over blocks (init)",
              "Var of the last block's output / the first's (init)", "seconds"},
             table);

    Figure fig{.name = "deep-residual", .title = "Deep residual networks on Fashion-MNIST: what lets them train",
               .rows = 1, .cols = 2, .width = 1100, .height = 460, .panels = {}};
    const int64_t deepest = *std::max_element(depths.begin(), depths.end());
    Panel curves{.title = "(a) test accuracy through training, " + std::to_string(deepest) + " layers",
                 .xlabel = "training step (mini-batches of 64)", .ylabel = "test accuracy (%), first 1,000 test images",
                 .key = "bottom right"};
    curves.ymin = 0;
    curves.ymax = 100;
    Panel var{.title = "(b) at initialization: Var f(x) / Var skip(x) per block, " + std::to_string(deepest) + " layers",
              .xlabel = "block", .ylabel = "variance ratio (log)", .key = "top left"};
    var.logy = true;
    int color = 0;
    for (size_t vi = 0; vi < std::size(kVariants); ++vi) {
      ++color;
      Series c{.title = kVariantLabels[vi], .style = Style::LinesPoints, .color = color};
      for (const Row* r : t.where("run", key(kVariants[vi], deepest, 1)))
        if (t.text(*r, "metric") == "test_accuracy") {
          c.x.push_back(t.number(*r, "step"));
          c.y.push_back(t.number(*r, "value"));
        }
      curves.series.push_back(std::move(c));
      const std::vector<double> vb = values(kVariants[vi], deepest, "var_branch"), vs = values(kVariants[vi], deepest, "var_skip");
      Series s{.title = kVariantLabels[vi], .style = Style::LinesPoints, .color = color};
      for (size_t b = 0; b < vb.size() && ctx.options.seeds == 1; ++b) {
        if (!(vb[b] > 0 && vs[b] > 0)) continue;  // SkipInit and Fixup's branches are exactly 0: off a log axis
        s.x.push_back(static_cast<double>(b + 1));
        s.y.push_back(vb[b] / vs[b]);
      }
      if (!s.x.empty()) var.series.push_back(std::move(s));
    }
    fig.panels = {curves, var};
    md.figure(fig.name, "Accuracy through training and the branch-to-skip variance at initialization");

    const std::string d = std::to_string(deepest), shallow = std::to_string(depths.front());
    auto pct = [](double v) { return std::isnan(v) ? std::string("diverged") : fixed(v, 2) + "%"; };
    std::string verdict = "At " + d + " layers: BN " + pct(acc["bn/" + d]) + ", no normalization " + pct(acc["none/" + d]) +
                          ", SkipInit " + pct(acc["skipinit/" + d]) + ", Fixup " + pct(acc["fixup/" + d]) + "; at " + shallow +
                          " layers " + pct(acc["bn/" + shallow]) + ", " + pct(acc["none/" + shallow]) + ", " +
                          pct(acc["skipinit/" + shallow]) + " and " + pct(acc["fixup/" + shallow]) + ". ";
    verdict += "At initialization without normalization the branch carries " + fixed(ratio_last["none/" + d], 3) +
               " of the skip path's variance in the last block and the output's variance grows " +
               factor(out_growth["none/" + d]) + "-fold from the first block to the last (He-normal convolutions double it "
               "per block); with BN the last block's branch is " + fixed(ratio_last["bn/" + d], 3) +
               " of the skip (BN sets each branch's variance to about 1 while the skip path accumulates, so deep blocks start "
               "close to the identity, De & Smith's explanation), and SkipInit and Fixup start every branch at exactly 0. ";
    // A diverged run counts as chance; "trains" is 10 points above the unnormalized net.
    auto score = [&](const std::string& id) { return std::isnan(acc[id]) ? 10.0 : acc[id]; };
    const double none = score("none/" + d), with_bn = score("bn/" + d);
    verdict += with_bn > none + 10 ? "**Held**: BN trains the deep ResNet where the same network without normalization "
                                     "does not at this learning rate (" + pct(acc["none/" + d]) + "). "
                                   : "**Not held** at this budget: BN does not train the " + d + "-layer ResNet 10 points "
                                     "beyond the unnormalized one. ";
    for (const char* v : {"skipinit", "fixup"}) {
      const double a = score(std::string(v) + "/" + d);
      const std::string label = std::string(v) == "fixup" ? "Fixup" : "SkipInit";
      verdict += a > none + 10 && a > with_bn - 10
                     ? "**Held** for " + label + ": it trains the network without any normalization (" + fixed(a, 2) +
                           "%, BN " + fixed(with_bn, 2) + "%). "
                     : "**Not held** for " + label + " here (" + pct(acc[std::string(v) + "/" + d]) + "). ";
    }
    verdict += "The budget is small (steps of 64 images: " + steps_text + "; one seed unless --seeds): the accuracies "
               "compare how fast each variant starts to learn, not where it would end; --steps and --depths 110 go further.";
    md.paragraph("**Verdict.** " + verdict);
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_deep_residual() { return std::make_unique<DeepResidual>(); }

}  // namespace bnlab::experiments
