// paper-fig1: Ioffe & Szegedy 2015, sec. 4.1, Figure 1. A 784-100-100-100-10 network of sigmoids
// on MNIST, with and without BN before each sigmoid, mini-batches of 60, plain SGD. (a) test
// accuracy against steps; (b, c) the 15th, 50th and 85th percentiles of the input to one sigmoid
// of the last hidden layer over training, without and with BN. The percentiles are taken over
// the first 1,000 test images in eval mode (BN with its running statistics), every few steps.
// The paper's learning rate is not stated; we use SGD lr 0.5 (see docs/experiments.md).
#include <array>
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

constexpr double kLr = 0.5;
constexpr int64_t kBatch = 60;
constexpr int64_t kProbeImages = 1000;
constexpr int64_t kUnit = 0;  // the sigmoid whose input is followed (unit 0 of the last hidden layer)
const char* const kModels[] = {"paper-mlp", "paper-mlp-bn"};

std::string key(const char* model, int64_t seed) { return std::string(model) + "/s" + std::to_string(seed); }

// Index of the layer whose output is the input of the last Sigmoid.
size_t last_pre_sigmoid(const Network& net) {
  size_t found = 0;
  for (size_t i = 1; i < net.layer_count(); ++i)
    if (net.layer(i).type() == "Sigmoid") found = i - 1;
  return found;
}

class PaperFig1 final : public Experiment {
 public:
  std::string_view name() const override { return "paper-fig1"; }
  std::string_view summary() const override {
    return "Ioffe & Szegedy Fig. 1: 3x100 sigmoid MLP with/without BN, accuracy and a sigmoid's input percentiles";
  }
  int64_t default_steps() const override { return 50000; }
  int64_t default_eval_every(int64_t steps) const override { return std::max<int64_t>(1, steps / 100); }

  std::vector<std::string> columns() const override {
    std::vector<std::string> c = {"run", "model", "seed"};
    for (const std::string& s : curve_columns()) c.push_back(s);
    for (const char* s : {"p15", "p50", "p85"}) c.push_back(s);
    return c;
  }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    std::vector<PlannedRun> runs;
    for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
      for (const char* model : kModels) {
        runs.push_back({key(model, seed), [&ctx, model, seed](const ProgressFn& progress) { return train(ctx, model, seed, progress); }});
      }
    }
    return runs;
  }

  static RunOutput train(const Context& ctx, const char* model, int64_t seed, const ProgressFn& progress) {
    const DataSource& data = *ctx.data;
    Network net = build_model(model_text(model), model, data, static_cast<uint64_t>(seed));
    const Dataset probe = first_samples(data.test, kProbeImages);
    net.reserve(std::max(kBatch, probe.count));  // keeps every activation of the probe's forward
    const size_t layer = last_pre_sigmoid(net);
    const int64_t units = numel(net.output_shape(layer));
    std::vector<float> input(static_cast<size_t>(probe.count * probe.height * probe.width));
    std::vector<uint8_t> labels(static_cast<size_t>(probe.count));
    std::vector<int64_t> indices(static_cast<size_t>(probe.count));
    for (int64_t i = 0; i < probe.count; ++i) indices[i] = i;
    gather_batch(input.data(), labels.data(), probe, data, indices.data(), probe.count);
    // Percentiles of the followed sigmoid's input over the probe images, by step.
    std::map<int64_t, std::array<double, 3>> percentiles;
    auto measure = [&](int64_t step) {
      net.forward(input.data(), probe.count, {.mode = Mode::Eval});
      const float* a = net.activation(layer);
      std::vector<double> v(static_cast<size_t>(probe.count));
      for (int64_t i = 0; i < probe.count; ++i) v[i] = a[i * units + kUnit];
      percentiles[step] = {percentile(v, 15), percentile(v, 50), percentile(v, 85)};
    };
    const LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch,
                           .optimizer = {.kind = OptimizerKind::SGD, .lr = kLr},
                           .seed = static_cast<uint64_t>(seed), .eval_every = ctx.options.eval_every,
                           .eval_images = data.test.count};
    const LoopResult r = train_steps(net, data, loop, progress, {.at_eval = measure});
    std::vector<Row> rows = curve_rows(r, {key(model, seed), model, field(seed)});
    for (Row& row : rows) {  // run, model, seed, step, train_loss, test_loss, test_accuracy, status
      const auto it = row[7] == "curve" ? percentiles.find(std::stoll(row[3])) : percentiles.end();
      for (int q = 0; q < 3; ++q) row.push_back(it == percentiles.end() ? "nan" : field(it->second[q]));
    }
    return {rows, outcome(r)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    Markdown md("Ioffe & Szegedy (2015), Figure 1, on bnlab");
    md.paragraph(settings_paragraph(
        ctx, "784 -> 3 x (Linear 100, [BatchNorm1d], Sigmoid) -> Linear 10, PyTorch's default initialization, SGD lr " +
                 fixed(kLr, 1) + " without momentum, mini-batches of " + std::to_string(kBatch) +
                 ". Test accuracy on the whole test set every " + std::to_string(ctx.options.eval_every) +
                 " steps; the percentiles of the input of unit " + std::to_string(kUnit) +
                 " of the last hidden layer's sigmoid over the first " + std::to_string(kProbeImages) +
                 " test images (eval mode) at the same steps."));
    Figure fig{.name = "paper-fig1", .title = "", .rows = 1, .cols = 3, .width = 1500, .height = 480, .panels = {}};
    Panel acc{.title = "(a) test accuracy", .xlabel = "training step (batches of 60)", .ylabel = "test accuracy (%)",
              .ymin = 85, .ymax = 100};
    std::vector<std::vector<std::string>> table;
    for (size_t m = 0; m < std::size(kModels); ++m) {
      const bool bn = m == 1;
      Panel pct{.title = bn ? "(c) with BN: input of a last-layer sigmoid" : "(b) without BN: input of a last-layer sigmoid",
                .xlabel = "training step", .ylabel = "percentile of the sigmoid's input", .key = "top right"};
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
        const auto rows = t.where("run", key(kModels[m], seed));
        Series s{.title = seed > 1 ? "" : bn ? "with BN" : "without BN", .color = static_cast<int>(m) + 1};
        Series q[3] = {{.title = "15th percentile", .color = 3},
                       {.title = "50th (median)", .color = 8},
                       {.title = "85th percentile", .color = 1}};
        double final_acc = std::nan(""), at_tenth = std::nan(""), diverged = std::nan("");
        for (const Row* r : rows) {
          const double step = t.number(*r, "step"), a = t.number(*r, "test_accuracy");
          if (t.text(*r, "status") == "final") final_acc = a;
          if (t.text(*r, "status") == "diverged") diverged = step;
          if (t.text(*r, "status") != "curve") continue;
          if (std::isnan(at_tenth) && step >= static_cast<double>(ctx.options.steps) / 10) at_tenth = a;
          s.x.push_back(step);
          s.y.push_back(a);
          const char* names[3] = {"p15", "p50", "p85"};
          for (int k = 0; k < 3; ++k) {
            q[k].x.push_back(step);
            q[k].y.push_back(t.number(*r, names[k]));
          }
        }
        acc.series.push_back(std::move(s));
        if (seed == 1) pct.series = {q[0], q[1], q[2]};
        table.push_back({bn ? "with BN" : "without BN", field(seed), fixed(at_tenth, 2),
                         std::isnan(diverged) ? fixed(final_acc, 2) : "diverged at step " + fixed(diverged, 0)});
      }
      fig.panels.push_back(std::move(pct));
    }
    fig.panels.insert(fig.panels.begin(), acc);
    md.table({"network", "seed", "test accuracy (%) after " + std::to_string(ctx.options.steps / 10) + " steps",
              "after " + std::to_string(ctx.options.steps) + " steps"}, table);
    md.figure(fig.name, "(a) test accuracy with and without BN; (b, c) percentiles of a sigmoid's input");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_paper_fig1() { return std::make_unique<PaperFig1>(); }

}  // namespace bnlab::experiments
