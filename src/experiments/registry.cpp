// The driver of `bnlab experiment`: resolves the options, checks gnuplot, the own flags' values
// (in the plan) and the settings of earlier results before any training, runs the planned runs that are not on disk yet (each
// run's rows saved as soon as it finishes), then draws the figures and writes the report from
// the rows on disk, so a resumed experiment reports exactly as an uninterrupted one.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "bnlab/atomic_file.h"
#include "bnlab/error.h"
#include "bnlab/threads.h"
#include "experiments/experiment.h"
#include "experiments/plot.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

namespace fs = std::filesystem;

std::vector<std::unique_ptr<Experiment>> all() {
  std::vector<std::unique_ptr<Experiment>> list;
  list.push_back(make_bn_vs_nobn());
  list.push_back(make_placement());
  list.push_back(make_paper_fig1());
  list.push_back(make_depth());
  list.push_back(make_activations());
  list.push_back(make_batch_composition());
  list.push_back(make_robustness());
  list.push_back(make_smoothness());
  list.push_back(make_input_normalization());
  list.push_back(make_weight_decay());
  list.push_back(make_batch_size());
  list.push_back(make_train_eval_gap());
  list.push_back(make_deep_residual());
  return list;
}

std::unique_ptr<Experiment> find(const std::string& name) {
  for (auto& e : all())
    if (e->name() == name) return std::move(e);
  std::string known;
  for (const std::string& n : names()) known += (known.empty() ? "" : ", ") + n;
  fail("experiment", "name", "unknown experiment '" + name + "' (known: " + known + ")");
}

}  // namespace

std::string command_line(const Context& ctx) {
  const Options& o = ctx.options;
  std::string cmd = "bnlab experiment " + o.name + " --steps " + std::to_string(o.steps) + " --seeds " +
                    std::to_string(o.seeds) + " --eval-every " + std::to_string(o.eval_every);
  if (o.data != "mnist") cmd += " --data " + o.data;
  if (o.limit_train > 0) cmd += " --limit-train " + std::to_string(o.limit_train);
  if (o.limit_test > 0) cmd += " --limit-test " + std::to_string(o.limit_test);
  for (const auto& [flag, value] : o.flags) cmd += " --" + flag + " " + value;
  if (!o.out_dir.empty()) cmd += " --out " + o.out_dir;
  return cmd;
}

std::string settings_paragraph(const Context& ctx, const std::string& recipe) {
  const DataSource& d = *ctx.data;
  return "Data: " + d.name + ", " + std::to_string(d.train.count) + " training and " + std::to_string(d.test.count) +
         " test images. " + recipe + " Made by `" + command_line(ctx) + "` on " + std::to_string(threads()) +
         " threads; the raw numbers are in `results.csv`.";
}

std::string data_title(const DataSource& data) {
  if (data.name == "mnist") return "MNIST";
  if (data.name == "fashion-mnist") return "Fashion-MNIST";
  return data.name;
}

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& e : all()) out.emplace_back(e->name());
  return out;
}

std::string describe(const std::string& name) {
  const auto e = find(name);
  const std::string data = e->default_data() == "mnist" ? "" : ", " + std::string(e->default_data());
  return std::string(e->summary()) + " (default: " + std::to_string(e->default_steps()) + " steps, " +
         std::to_string(e->default_seeds()) + (e->default_seeds() == 1 ? " seed" : " seeds") + data + ")";
}

std::string default_data(const std::string& name) { return std::string(find(name)->default_data()); }

std::vector<FlagInfo> flags(const std::string& name) { return find(name)->flags(); }

Outputs run(const Options& options, Observer& observer) {
  const auto experiment = find(options.name);
  if (options.steps < 0 || options.seeds < 0 || options.eval_every < 0) fail("experiment", "options", "must not be negative");
  Context ctx{options, options.out_dir.empty() ? "out/experiments/" + options.name : options.out_dir, nullptr};
  ctx.options.steps = options.steps > 0 ? options.steps : experiment->default_steps();
  ctx.options.seeds = options.seeds > 0 ? options.seeds : experiment->default_seeds();
  ctx.options.eval_every = options.eval_every > 0 ? options.eval_every : experiment->default_eval_every(ctx.options.steps);
  ctx.options.data = options.data.empty() ? std::string(experiment->default_data()) : options.data;
  // Own flags: every declared one gets its value (given or default); any other is refused.
  std::map<std::string, std::string> settings = {{"experiment", options.name},
                                                 {"steps", std::to_string(ctx.options.steps)},
                                                 {"eval_every", std::to_string(ctx.options.eval_every)},
                                                 {"data", ctx.options.data},
                                                 {"limit_train", std::to_string(options.limit_train)},
                                                 {"limit_test", std::to_string(options.limit_test)}};
  const std::vector<FlagInfo> own = experiment->flags();
  ctx.options.flags.clear();
  for (const FlagInfo& f : own) {
    const auto given = options.flags.find(f.name);
    ctx.options.flags[f.name] = given == options.flags.end() ? f.default_value : given->second;
    if (f.changes_rows) settings["flag " + f.name] = ctx.options.flags[f.name];
  }
  for (const auto& [flag, value] : options.flags) {
    if (ctx.options.flags.count(flag)) continue;
    std::string known;
    for (const FlagInfo& f : own) known += (known.empty() ? "" : ", ") + ("--" + f.name);
    fail("experiment", "--" + flag, "not a flag of experiment " + options.name +
                                         (known.empty() ? " (it has none of its own)" : " (its own: " + known + ")"));
  }
  require_gnuplot();  // before hours of training, not after

  // The data, then the plan, which checks the own flags' values: a bad one leaves --out as it was.
  observer.on_start("loading " + ctx.options.data);
  DataSource data = load_data(ctx.options.data);
  limit_samples(data.train, options.limit_train);
  limit_samples(data.test, options.limit_test);
  ctx.data = &data;
  const std::vector<PlannedRun> plan = experiment->plan(ctx);

  std::error_code ec;
  fs::create_directories(ctx.out_dir, ec);
  if (ec) fail(ctx.out_dir, "--out", "cannot create the directory: " + ec.message());
  Outputs out{ctx.out_dir, (fs::path(ctx.out_dir) / "results.csv").string(),
              (fs::path(ctx.out_dir) / "report.md").string(), {}, 0, 0};
  if (options.fresh) {
    fs::remove(out.csv);
    fs::remove(fs::path(ctx.out_dir) / "settings.txt");
  }
  // What changes the meaning of the rows; seeds only add or drop runs, threads only the last bits.
  check_settings(ctx.out_dir, settings);
  ResultsFile results(out.csv, experiment->columns());

  std::set<std::string> keys;
  out.runs = static_cast<int64_t>(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    const RunInfo info{plan[i].key, static_cast<int64_t>(i) + 1, out.runs};
    keys.insert(plan[i].key);
    if (results.has_run(plan[i].key)) {
      ++out.skipped;
      observer.on_run_skipped(info);
      continue;
    }
    observer.on_run_begin(info);
    const auto start = std::chrono::steady_clock::now();
    const RunOutput output = plan[i].execute([&](const RunProgress& p) { observer.on_progress(info, p); });
    results.append(output.rows);
    observer.on_run_end(info, output.outcome, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  observer.on_start("drawing the figures");
  const ReportText report = experiment->report(ctx, results.table(keys));
  out.figures = report.figures;
  write_file_atomically(out.report, [&](const ByteSink& sink) {
    sink({reinterpret_cast<const uint8_t*>(report.markdown.data()), report.markdown.size()});
  });
  return out;
}

}  // namespace bnlab::experiments
