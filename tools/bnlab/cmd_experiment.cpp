// bnlab experiment NAME: runs one of the batch-norm experiments (src/experiments) and writes its
// results.csv, figures (SVG + PNG) and report.md into --out. Progress is a live line on a
// terminal and a line per evaluation otherwise. Ctrl-C keeps the finished runs; rerunning the
// same command skips them.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>

#include "bnlab/threads.h"
#include "commands.h"
#include "flag_checks.h"
#include "experiments/experiment.h"

namespace bnlab::cli {
namespace {

struct ExperimentFlags {
  experiments::Options options;
  int threads = 0;
  std::map<std::string, std::string> own;  // every experiment's own flags, by name
  std::map<std::string, CLI::Option*> own_options;
};

class ConsoleObserver final : public experiments::Observer {
 public:
  ConsoleObserver() : live_(::isatty(STDOUT_FILENO) != 0) {}
  void on_start(const std::string& what) override { std::printf("%s...\n", what.c_str()); std::fflush(stdout); }
  void on_run_skipped(const experiments::RunInfo& r) override {
    std::printf("[%lld/%lld] %s: already in results.csv, skipped\n", static_cast<long long>(r.index),
                static_cast<long long>(r.total), r.key.c_str());
    std::fflush(stdout);
  }
  void on_progress(const experiments::RunInfo& r, const experiments::RunProgress& p) override {
    // Not a terminal: a line per evaluation, and at least one per tenth of the run.
    const int64_t tenth = p.steps > 0 ? 10 * p.step / p.steps : 0;
    if (!live_ && !p.evaluated && tenth <= last_tenth_) return;
    last_tenth_ = p.step == 0 ? 0 : tenth;
    const double rate = p.seconds > 0 ? static_cast<double>(p.step) / p.seconds : 0;
    char accuracy[16] = "-";
    if (p.accuracy >= 0) std::snprintf(accuracy, sizeof accuracy, "%.2f%%", p.accuracy);
    std::printf("%s[%lld/%lld] %s: step %lld/%lld  loss %.4f  test acc %s  %.1f steps/s%s", live_ ? "\r\033[K" : "",
                static_cast<long long>(r.index), static_cast<long long>(r.total), r.key.c_str(),
                static_cast<long long>(p.step), static_cast<long long>(p.steps), p.train_loss,
                accuracy, rate, live_ ? "" : "\n");
    std::fflush(stdout);
  }
  void on_run_end(const experiments::RunInfo& r, const std::string& outcome, double seconds) override {
    std::printf("%s[%lld/%lld] %s: %s (%.1f s)\n", live_ ? "\r\033[K" : "", static_cast<long long>(r.index),
                static_cast<long long>(r.total), r.key.c_str(), outcome.c_str(), seconds);
    std::fflush(stdout);
  }

 private:
  bool live_;
  int64_t last_tenth_ = 0;
};

void run_experiment(const ExperimentFlags& f) {
  set_threads(f.threads);
  std::printf("bnlab experiment %s: %s; %d threads\n", f.options.name.c_str(),
              experiments::describe(f.options.name).c_str(), threads());
  ConsoleObserver console;
  const experiments::Outputs out = experiments::run(f.options, console);
  std::printf("%lld runs (%lld from earlier results)\nwrote %s\n      %s\n", static_cast<long long>(out.runs),
              static_cast<long long>(out.skipped), out.csv.c_str(), out.report.c_str());
  for (const std::string& fig : out.figures) std::printf("      %s\n", fig.c_str());
}

}  // namespace

void add_experiment_command(CLI::App& app) {
  auto flags = std::make_shared<ExperimentFlags>();
  std::string names;
  for (const std::string& n : experiments::names()) names += "\n  " + n + ": " + experiments::describe(n);
  CLI::App* cmd = app.add_subcommand("experiment", "Reproduce a batch-norm claim: CSV, SVG/PNG figures and a report");
  cmd->footer("Experiments:" + names);
  cmd->add_option("name", flags->options.name, "Which experiment")->required()->check(CLI::IsMember(experiments::names()));
  cmd->add_option("--out", flags->options.out_dir, "Output directory (default: out/experiments/NAME)");
  cmd->add_option("--seeds", flags->options.seeds, "Seeds per configuration (default: the experiment's)")->check(integer_in(1, 1000, "1 to 1000"));
  cmd->add_option("--steps", flags->options.steps, "Optimizer steps per run (default: the experiment's)")->check(integer_in(1, kMaxCount, "1 to 10^12"));
  cmd->add_option("--eval-every", flags->options.eval_every, "Steps between measurements (default: the experiment's)")
      ->check(integer_in(1, kMaxCount, "1 to 10^12"));
  cmd->add_option("--data", flags->options.data,
                  "mnist, fashion-mnist, or a directory of IDX files (default: the experiment's, mnist for most)");
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(threads_range());
  cmd->add_option("--limit-train", flags->options.limit_train, "Use only the first N training images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--limit-test", flags->options.limit_test, "Use only the first N test images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_flag("--fresh", flags->options.fresh, "Discard earlier results in --out instead of resuming");
  // The experiments' own flags, registered once by name (the run refuses one its experiment lacks).
  for (const std::string& n : experiments::names()) {
    for (const experiments::FlagInfo& f : experiments::flags(n)) {
      if (flags->own_options.count(f.name)) continue;
      flags->own_options[f.name] =
          cmd->add_option("--" + f.name, flags->own[f.name], n + ": " + f.help + " (default: " + f.default_value + ")")
              ->group("Own flags of one experiment");
    }
  }
  cmd->callback([flags] {
    for (const auto& [name, option] : flags->own_options)
      if (option->count() > 0) flags->options.flags[name] = flags->own[name];
    run_experiment(*flags);
  });
}

}  // namespace bnlab::cli
