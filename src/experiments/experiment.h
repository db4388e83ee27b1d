// bnlab experiment: reproductions of the claims made for batch normalization (the tutorial,
// ../shared/seed/batchnorm-tutorial.md, and Ioffe & Szegedy 2015, sec. 4.1). Each experiment
// trains a planned list of runs, writes each finished run's rows to <out>/results.csv at once
// (atomically, so an interrupted experiment keeps them and a rerun skips them), then draws its
// figures (SVG and PNG, through gnuplot) and writes <out>/report.md. docs/experiments.md has
// the results and the commands.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bnlab::experiments {

struct Options {
  std::string name;             // one of names()
  std::string out_dir;          // empty: out/experiments/<name>
  int64_t seeds = 0;            // seeds per configuration; 0: the experiment's default
  int64_t steps = 0;            // optimizer steps per run; 0: the experiment's default
  int64_t eval_every = 0;       // steps between test evaluations; 0: the experiment's default
  std::string data;             // as bnlab train --data; empty: the experiment's (default_data())
  int64_t limit_train = 0, limit_test = 0;  // first N images only (0: all)
  bool fresh = false;           // forget earlier results in out_dir instead of resuming
  // The experiment's own flags given on the command line, by name without "--" (flags()).
  std::map<std::string, std::string> flags;
};

// A flag of one experiment only (`bnlab experiment batch-size --sizes 2,4,8`).
struct FlagInfo {
  std::string name;           // without "--"
  std::string help;
  std::string default_value;  // as it would be typed
  bool changes_rows = true;   // false: it only adds or drops runs (earlier rows stay valid)
};

// One planned run: `index` counts from 1 to `total` over the experiment's plan.
struct RunInfo {
  std::string key;
  int64_t index = 0, total = 0;
};

struct RunProgress {
  int64_t step = 0, steps = 0;
  double train_loss = 0;  // mean since the last report
  double accuracy = -1;   // percent, the latest test evaluation; < 0 before the first one
  bool evaluated = false; // this report follows a test evaluation
  double seconds = 0;     // since the run began
};

// How an experiment reports to its caller (the command prints it).
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_start(const std::string& /*what*/) {}
  virtual void on_run_skipped(const RunInfo&) {}
  virtual void on_run_begin(const RunInfo&) {}
  virtual void on_progress(const RunInfo&, const RunProgress&) {}
  virtual void on_run_end(const RunInfo&, const std::string& /*outcome*/, double /*seconds*/) {}
};

struct Outputs {
  std::string dir, csv, report;
  std::vector<std::string> figures;  // SVG and PNG files
  int64_t runs = 0, skipped = 0;     // planned runs, of which already on disk
};

std::vector<std::string> names();
// One line: what the experiment measures and its default budget.
std::string describe(const std::string& name);
// The data set an experiment trains on when --data is not given ("mnist" for most).
std::string default_data(const std::string& name);
// The own flags of an experiment (empty for most).
std::vector<FlagInfo> flags(const std::string& name);

// Throws Error for bad options, missing data or a missing gnuplot (checked before training).
Outputs run(const Options& options, Observer& observer);

}  // namespace bnlab::experiments
