// batch-composition: BN's statistics assume that every batch is a fair sample of the data. The
// tutorial's network with BN, GroupNorm and Batch Renormalization (Ioffe 2017, whose sec. 4.3
// trains on non-i.i.d. minibatches) trained on shuffled batches and on single-class batches;
// tested with the running statistics (eval mode), with each test batch's own statistics (train
// mode, dropout off) on shuffled and on single-class test batches; and a probe of how one test
// image's prediction in train mode moves with the 63 images it is batched with.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "bnlab/error.h"
#include "bnlab/rng.h"
#include "bnlab/train_step.h"
#include "experiments/batch_order.h"
#include "experiments/loop.h"
#include "experiments/nets.h"
#include "experiments/plot.h"
#include "experiments/report.h"
#include "experiments/stats.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

constexpr int64_t kBatch = 64;
// The verdict calls training on single-class batches fine when its final training loss is at most
// this many times the shuffled runs'.
constexpr double kFineLoss = 1.5;

struct Norm {
  const char* name;
  const char* label;
  const char* short_label;  // for the figure's keys
};
const Norm kNorms[] = {{"bn", "BatchNorm", "BN"}, {"gn", "GroupNorm (8 groups)", "GN"}, {"renorm", "Batch Renormalization", "renorm"}};
const char* const kOrders[] = {"shuffled", "class-sorted"};

// The tutorial's network with the normalizer; renorm starts as plain BN for 100 batches (the
// running statistics are meaningless at first) and reaches r_max 3, d_max 5 over 200 more.
std::string norm_text(const std::string& norm) {
  if (norm == "gn") return model_text("seed-groupnorm");
  std::string text = model_text("seed");
  if (norm == "bn") return text;
  for (const std::string type : {"BatchNorm2d", "BatchNorm1d"}) {
    for (size_t at = text.find(type); at != std::string::npos; at = text.find(type, at + 1))
      text.insert(at + type.size(), " renorm=true r_max=3 d_max=5 renorm_warmup=100 renorm_ramp=200");
  }
  return text;
}

std::string key(const std::string& norm, const std::string& order, int64_t seed) {
  return norm + "/" + order + "/s" + std::to_string(seed);
}

// The network's log-probabilities for the test samples `indices` (n <= capacity) normalized by
// their own batch statistics: training mode without dropout, and the running statistics put back
// afterwards (Batch Renormalization reads them in training mode, so each call sees the same).
class BatchModeProbe {
 public:
  BatchModeProbe(Network& net, const DataSource& data)
      : net_(net), data_(data), x_(static_cast<size_t>(kBatch * data.test.height * data.test.width)),
        labels_(kBatch), buffers_(net.buffers().begin(), net.buffers().end()),
        counters_(net.counters().begin(), net.counters().end()) {}

  const float* forward(const int64_t* indices, int64_t n) {
    gather_batch(x_.data(), labels_.data(), data_.test, data_, indices, n);
    const float* out = net_.forward(x_.data(), n, {.mode = Mode::Train, .random_key = 0, .backward_follows = false,
                                                   .dropout = DropoutMode::Off});
    std::copy(buffers_.begin(), buffers_.end(), net_.buffers().begin());
    std::copy(counters_.begin(), counters_.end(), net_.counters().begin());
    return out;
  }
  uint8_t label(int64_t i) const { return labels_[static_cast<size_t>(i)]; }

 private:
  Network& net_;
  const DataSource& data_;
  std::vector<float> x_;
  std::vector<uint8_t> labels_;
  std::vector<float> buffers_;
  std::vector<int64_t> counters_;
};

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

// `samples` cut into ceil(n / kBatch) batches of near-equal size (none of one sample, which
// training-mode BN refuses, unless n is 1).
void append_batches(std::vector<std::vector<int64_t>>& batches, const std::vector<int64_t>& samples) {
  const int64_t n = static_cast<int64_t>(samples.size()), parts = (n + kBatch - 1) / kBatch;
  for (int64_t p = 0; p < parts; ++p)
    batches.emplace_back(samples.begin() + p * n / parts, samples.begin() + (p + 1) * n / parts);
}

// Accuracy (%) over every test sample once, each batch normalized by its own statistics.
double batch_mode_accuracy(BatchModeProbe& probe, const std::vector<std::vector<int64_t>>& batches, int64_t classes) {
  int64_t right = 0, seen = 0;
  for (const std::vector<int64_t>& b : batches) {
    const int64_t n = static_cast<int64_t>(b.size());
    const float* out = probe.forward(b.data(), n);
    for (int64_t i = 0; i < n; ++i) right += argmax(out + i * classes, classes) == probe.label(i);
    seen += n;
  }
  return 100.0 * static_cast<double>(right) / static_cast<double>(seen);
}

struct MatesResult {
  double changed = 0;         // % of probed images whose predicted class differs between random batch mates
  double logp_std = 0;        // mean over images of the std of log p(true class) over the random mates
  double max_change = 0;      // largest max - min of log p(true class) over every mate set of one image
  double acc_random = 0;      // accuracy (%) over all random mate sets
  double acc_own_class = 0;   // mates all of the image's own class
  double acc_other_class = 0; // mates all of one other class (mean over the other classes)
};

// One test image at a time (the first `images` test images) at position 0 of a batch of kBatch:
// `mate_sets` batches of mates drawn at random (with replacement) from the rest of the test set,
// then one batch of mates from each class.
MatesResult probe_mates(BatchModeProbe& probe, const DataSource& data, int64_t images, int64_t mate_sets,
                        uint64_t seed, int64_t classes) {
  const Dataset& test = data.test;
  const std::vector<std::vector<int64_t>> by_class = indices_by_class(test, classes);
  Rng rng(random_bits(seed, 0xba7c4));
  std::vector<int64_t> batch(kBatch);
  MatesResult r;
  int64_t changed = 0, right_random = 0, right_own = 0, right_other = 0, other_sets = 0;
  std::vector<double> stds;
  for (int64_t image = 0; image < images; ++image) {
    const int64_t label = test.labels[static_cast<size_t>(image)];
    std::vector<double> logp;
    std::vector<int64_t> predicted;
    double lo = INFINITY, hi = -INFINITY;
    auto run = [&] {
      batch[0] = image;
      const float* out = probe.forward(batch.data(), kBatch);
      const double lp = out[label];
      lo = std::min(lo, lp);
      hi = std::max(hi, lp);
      return std::pair<double, int64_t>{lp, argmax(out, classes)};
    };
    for (int64_t s = 0; s < mate_sets; ++s) {
      for (int64_t i = 1; i < kBatch; ++i) {
        int64_t mate = static_cast<int64_t>(rng.below(static_cast<uint64_t>(test.count - 1)));
        batch[static_cast<size_t>(i)] = mate >= image ? mate + 1 : mate;  // anything but the image itself
      }
      const auto [lp, p] = run();
      logp.push_back(lp);
      predicted.push_back(p);
      right_random += p == label;
    }
    for (int64_t c = 0; c < classes; ++c) {
      const std::vector<int64_t>& pool = by_class[static_cast<size_t>(c)];
      if (pool.empty()) continue;
      for (int64_t i = 1; i < kBatch; ++i) batch[static_cast<size_t>(i)] = pool[rng.below(pool.size())];
      const bool right = run().second == label;
      if (c == label) {
        right_own += right;
      } else {
        right_other += right;
        ++other_sets;
      }
    }
    changed += std::any_of(predicted.begin(), predicted.end(), [&](int64_t p) { return p != predicted[0]; });
    stds.push_back(logp.size() > 1 ? stddev(logp) : 0.0);
    r.max_change = std::max(r.max_change, hi - lo);
  }
  const double n = static_cast<double>(images);
  r.changed = 100.0 * static_cast<double>(changed) / n;
  r.logp_std = mean(stds);
  r.acc_random = 100.0 * static_cast<double>(right_random) / (n * static_cast<double>(mate_sets));
  r.acc_own_class = 100.0 * static_cast<double>(right_own) / n;
  r.acc_other_class = other_sets > 0 ? 100.0 * static_cast<double>(right_other) / static_cast<double>(other_sets) : std::nan("");
  return r;
}

class BatchComposition final : public Experiment {
 public:
  std::string_view name() const override { return "batch-composition"; }
  std::string_view summary() const override {
    return "BN, GN and renorm trained on shuffled vs single-class batches: running vs batch statistics, batch mates";
  }
  int64_t default_steps() const override { return 600; }
  std::vector<FlagInfo> flags() const override {
    return {{"probe-images", "test images whose prediction is probed with other batch mates", "100", true},
            {"mate-sets", "random sets of 63 batch mates per probed image", "10", true}};
  }
  std::vector<std::string> columns() const override { return {"run", "norm", "order", "seed", "step", "metric", "value"}; }

  std::vector<PlannedRun> plan(const Context& ctx) const override {
    const int64_t images = ctx.flag_integer("probe-images", 1, 10000);
    const int64_t mate_sets = ctx.flag_integer("mate-sets", 2, 1000);
    if (images > ctx.data->test.count)
      fail("experiment", "--probe-images", std::to_string(images) + " is more than the " +
                                               std::to_string(ctx.data->test.count) + " test images");
    if (ctx.data->test.count < kBatch)  // the probe's batches: an image and 63 others
      fail("experiment", "--limit-test", "needs at least " + std::to_string(kBatch) + " test images");
    for (const std::vector<int64_t>& members : indices_by_class(ctx.data->test, 10))
      if (members.size() == 1)
        fail("experiment", "--limit-test", "a class has a single test image, which a single-class batch cannot normalize");
    std::vector<PlannedRun> runs;
    for (const Norm& norm : kNorms)
      for (const char* order : kOrders)
        for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed)
          runs.push_back({key(norm.name, order, seed), [&ctx, &norm, order, seed, images, mate_sets](const ProgressFn& p) {
                            return train(ctx, norm.name, order, seed, images, mate_sets, p);
                          }});
    return runs;
  }

  static RunOutput train(const Context& ctx, const std::string& norm, const std::string& order, int64_t seed,
                         int64_t images, int64_t mate_sets, const ProgressFn& progress) {
    const DataSource& data = *ctx.data;
    const uint64_t s = static_cast<uint64_t>(seed);
    Network net = build_model(norm_text(norm), norm, data, s);
    const int64_t classes = net.output_shape().back();
    LoopOptions loop{.steps = ctx.options.steps, .batch_size = kBatch, .optimizer = {.kind = OptimizerKind::Adadelta, .lr = 1.0},
                     .seed = s, .eval_every = ctx.options.eval_every};
    if (order == "class-sorted") {
      loop.epoch_order = [&data, s, classes](std::vector<int64_t>& o, int64_t epoch) {
        single_class_batches(o, data.train, classes, kBatch, s, epoch);
      };
    }
    const LoopResult result = train_steps(net, data, loop, progress);
    const std::string k = key(norm, order, seed);
    std::vector<Row> rows;
    auto add = [&](int64_t step, const std::string& metric, double value) {
      rows.push_back({k, norm, order, field(seed), field(step), metric, field(value)});
    };
    for (const CurvePoint& p : result.curve) {
      add(p.step, "train_loss", p.train_loss);
      add(p.step, "test_accuracy", p.test_accuracy);
    }
    if (result.diverged_at > 0) {
      add(result.diverged_at, "diverged", 1);
      return {rows, outcome(result)};
    }
    const int64_t step = result.steps_done;
    add(step, "acc_running_stats", result.final_test.accuracy());
    // The whole test set once in each way, so that GroupNorm's three accuracies must agree.
    BatchModeProbe probe(net, data);
    std::vector<int64_t> test_order(static_cast<size_t>(data.test.count));
    shuffle_epoch(test_order, s + 1000, 0);
    std::vector<std::vector<int64_t>> shuffled, single_class;
    append_batches(shuffled, test_order);
    for (const std::vector<int64_t>& members : indices_by_class(data.test, classes)) append_batches(single_class, members);
    add(step, "acc_batch_stats_shuffled", batch_mode_accuracy(probe, shuffled, classes));
    add(step, "acc_batch_stats_single_class", batch_mode_accuracy(probe, single_class, classes));
    const MatesResult m = probe_mates(probe, data, images, mate_sets, s, classes);
    add(step, "mates_changed_pct", m.changed);
    add(step, "mates_logp_std", m.logp_std);
    add(step, "mates_max_change", m.max_change);
    add(step, "mates_acc_random", m.acc_random);
    add(step, "mates_acc_own_class", m.acc_own_class);
    add(step, "mates_acc_other_class", m.acc_other_class);
    return {rows, outcome(result)};
  }

  ReportText report(const Context& ctx, const Table& t) const override {
    // A metric's value at the last step it was recorded (train_loss: the last interval's mean).
    auto value = [&](const std::string& run, const std::string& metric) {
      double v = std::nan(""), at = -1;
      for (const Row* r : t.where("run", run))
        if (t.text(*r, "metric") == metric && t.number(*r, "step") > at) {
          v = t.number(*r, "value");
          at = t.number(*r, "step");
        }
      return v;
    };
    // Over the seeds whose run did not diverge (a diverged run's last loss is not a final one).
    auto over_seeds = [&](const Norm& norm, const char* order, const std::string& metric) {
      std::vector<double> v;
      for (int64_t seed = 1; seed <= ctx.options.seeds; ++seed) {
        const std::string run = key(norm.name, order, seed);
        const double x = value(run, metric);
        if (!std::isnan(x) && std::isnan(value(run, "diverged"))) v.push_back(x);
      }
      return v;
    };
    // The loop's last curve point averages the training loss since the previous evaluation.
    const int64_t every = ctx.options.eval_every, steps = ctx.options.steps;
    const int64_t loss_steps = every > 0 && every < steps ? (steps % every == 0 ? every : steps % every) : steps;
    const std::string last_steps = loss_steps == 1 ? "the last step" : "the last " + std::to_string(loss_steps) + " steps";
    Markdown md("Batch composition: what BN assumes about a batch");
    md.paragraph(settings_paragraph(
        ctx, "The tutorial's network with each normalizer, Adadelta lr 1.0, batches of 64, " +
                 std::to_string(ctx.options.steps) + " steps (" + std::to_string(ctx.options.steps * kBatch) +
                 " images) per run. *Shuffled*: the trainer's shuffle. *Class-sorted*: every batch holds one class "
                 "(each class gets its share of the epoch's batches, its images shuffled, the batches' order "
                 "shuffled). Renorm: plain BN for 100 batches, then r_max and d_max rise to 3 and 5 over 200."));
    md.heading("Test accuracy by how the test batches are normalized");
    std::vector<std::vector<std::string>> acc_table;
    for (const Norm& norm : kNorms)
      for (const char* order : kOrders)
        acc_table.push_back({norm.label, order, mean_pm(over_seeds(norm, order, "train_loss"), 4),
                             mean_pm(over_seeds(norm, order, "acc_running_stats"), 2),
                             mean_pm(over_seeds(norm, order, "acc_batch_stats_shuffled"), 2),
                             mean_pm(over_seeds(norm, order, "acc_batch_stats_single_class"), 2)});
    md.table({"normalizer", "training batches", "final training loss", "running statistics (eval mode, %)",
              "each shuffled test batch's own statistics (%)", "each single-class test batch's own statistics (%)"},
             acc_table);
    md.paragraph("Final training loss: the mean NLL of " + last_steps +
                 " of training, each on its own training batch in training mode (dropout on, each batch normalized "
                 "by its own statistics: one class's for the class-sorted runs). Accuracies: the whole test set; batch "
                 "statistics: training-mode normalization of test batches of 64 without dropout, the running "
                 "statistics untouched. GroupNorm has no batch statistics: its three accuracy columns must agree.");
    md.heading("One image's prediction against its batch mates (training mode)");
    std::vector<std::vector<std::string>> mates_table;
    for (const Norm& norm : kNorms)
      for (const char* order : kOrders)
        mates_table.push_back({norm.label, order, mean_pm(over_seeds(norm, order, "mates_changed_pct"), 1),
                               mean_pm(over_seeds(norm, order, "mates_logp_std"), 4),
                               mean_pm(over_seeds(norm, order, "mates_max_change"), 4),
                               mean_pm(over_seeds(norm, order, "mates_acc_random"), 2),
                               mean_pm(over_seeds(norm, order, "mates_acc_own_class"), 2),
                               mean_pm(over_seeds(norm, order, "mates_acc_other_class"), 2)});
    md.table({"normalizer", "training batches", "images whose class changes (%)", "std of log p(true class)",
              "largest change of log p(true class)", "accuracy, random mates (%)", "mates of its own class (%)",
              "mates of one other class (%)"},
             mates_table);
    md.paragraph("Each of the first " + ctx.flag("probe-images") + " test images in a batch of 64 with " +
                 ctx.flag("mate-sets") + " random sets of 63 other test images (drawn with replacement), then with 63 "
                 "images of each class in turn. The changes are over the random sets; the largest change over all.");

    // The verdict, from the numbers above (means over seeds).
    auto m = [&](const Norm& norm, const char* order, const std::string& metric) { return mean(over_seeds(norm, order, metric)); };
    const Norm& bn = kNorms[0];
    const Norm& gn = kNorms[1];
    const Norm& rn = kNorms[2];
    const double bn_drop = m(bn, "shuffled", "acc_running_stats") - m(bn, "class-sorted", "acc_running_stats");
    const double gn_drop = m(gn, "shuffled", "acc_running_stats") - m(gn, "class-sorted", "acc_running_stats");
    const double rn_drop = m(rn, "shuffled", "acc_running_stats") - m(rn, "class-sorted", "acc_running_stats");
    const double loss_shuffled = m(bn, "shuffled", "train_loss"), loss_sorted = m(bn, "class-sorted", "train_loss");
    md.heading("Verdict");
    std::string verdict =
        "In training, BN's loss on its single-class batches averages " + fixed(loss_sorted, 4) + " over " + last_steps +
        " against " + fixed(loss_shuffled, 4) + " on shuffled batches: " +
        (!std::isfinite(loss_sorted) || !std::isfinite(loss_shuffled)
             ? std::string("no comparison (a run diverged). ")
         : loss_sorted <= kFineLoss * loss_shuffled
             ? "**training looks fine** (" +
                   (loss_sorted <= loss_shuffled ? std::string("no higher than shuffled")
                                                 : "within " + fixed(kFineLoss, 1) + " times shuffled") + "). "
             : "training itself suffers (" + fixed(loss_sorted / loss_shuffled, 1) + " times the shuffled runs' loss). ") +
        "Trained on single-class batches, BN's accuracy with its running statistics is " +
        fixed(m(bn, "class-sorted", "acc_running_stats"), 2) + "% against " + fixed(m(bn, "shuffled", "acc_running_stats"), 2) +
        "% when trained on shuffled batches (" + fixed(bn_drop, 2) + " points lower): " +
        (bn_drop > 5 ? "**eval with running statistics fails**, as the claim says. "
                     : "the claim that eval with running statistics fails **does not hold at this budget**. ") +
        "The same weights normalized by single-class test batches reach " +
        fixed(m(bn, "class-sorted", "acc_batch_stats_single_class"), 2) +
        "%. GroupNorm, which has no batch statistics, loses " + fixed(gn_drop, 2) + " points (" +
        (std::abs(gn_drop) <= 1.5 ? "unaffected"
                                  : "what single-class batches cost the optimization itself: each step pulls towards one class") +
        "), Batch Renormalization " + fixed(rn_drop, 2) + " points (" +
        (rn_drop < bn_drop / 2 ? "much less than BN" : rn_drop < bn_drop ? "less than BN, not immune" : "no better than BN") +
        "). In training mode, a BN network's prediction of one image moves with its batch mates: the log-probability "
        "of its class changes by up to " + fixed(m(bn, "shuffled", "mates_max_change"), 3) + " and " +
        fixed(m(bn, "shuffled", "mates_changed_pct"), 1) + "% of the probed images change class between random sets "
        "of mates (trained on shuffled batches); GroupNorm's largest change is " + fixed(m(gn, "shuffled", "mates_max_change"), 3) +
        (m(gn, "shuffled", "mates_max_change") == 0 ? " (bitwise the same output whatever the mates)." : ".");
    md.paragraph(verdict);

    Figure fig{.name = "batch-composition",
               .title = "Shuffled vs single-class training batches (tutorial network, " + data_title(*ctx.data) + ")",
               .rows = 1, .cols = 2, .width = 1200, .height = 560, .panels = {}};
    Panel curves{.title = "(a) test accuracy with the running statistics", .xlabel = "training step (batches of 64)",
                 .ylabel = "test accuracy (%), eval mode", .ymin = 0, .ymax = 100,
                 .key = "at graph 0.98,0.84 right top maxrows 3"};
    Panel modes{.title = "(b) the same weights, three ways to normalize the test batches",
                .xlabel = "normalization of the test batches", .ylabel = "test accuracy (%)", .xmin = 0.7, .xmax = 3.3,
                .ymin = 0, .ymax = 100, .key = "at graph 0.03,0.84 left top maxrows 3"};
    modes.xtics = {{1, "running statistics"}, {2, "shuffled batch"}, {3, "single-class batch"}};
    for (size_t ni = 0; ni < std::size(kNorms); ++ni) {
      for (const char* order : kOrders) {
        const bool sorted = std::string(order) == "class-sorted";
        const std::string title = std::string(kNorms[ni].short_label) + ", " + order;
        Series c{.title = title, .style = sorted ? Style::Dashed : Style::Lines, .color = static_cast<int>(ni) + 1};
        for (const Row* r : t.where("run", key(kNorms[ni].name, order, 1))) {
          if (t.text(*r, "metric") != "test_accuracy") continue;
          c.x.push_back(t.number(*r, "step"));
          c.y.push_back(t.number(*r, "value"));
        }
        curves.series.push_back(std::move(c));
        Series b{.title = title, .x = {1, 2, 3},
                 .y = {m(kNorms[ni], order, "acc_running_stats"), m(kNorms[ni], order, "acc_batch_stats_shuffled"),
                       m(kNorms[ni], order, "acc_batch_stats_single_class")},
                 .style = sorted ? Style::Dashed : Style::LinesPoints, .color = static_cast<int>(ni) + 1};
        modes.series.push_back(std::move(b));
      }
    }
    fig.panels = {curves, modes};
    md.figure(fig.name, "test accuracy with running and batch statistics after shuffled and single-class training");
    return {md.text(), render(fig, ctx.out_dir)};
  }
};

}  // namespace

std::unique_ptr<Experiment> make_batch_composition() { return std::make_unique<BatchComposition>(); }

}  // namespace bnlab::experiments
