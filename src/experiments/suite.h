// What every experiment implements, and what the driver (registry.cpp) hands it: the resolved
// options, the data, and a way to report progress. Rows are CSV fields in the order of
// columns(); the first column is always the run key.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bnlab/data.h"
#include "experiments/experiment.h"
#include "experiments/results.h"

namespace bnlab::experiments {

using ProgressFn = std::function<void(const RunProgress&)>;

struct RunOutput {
  std::vector<Row> rows;
  std::string outcome;  // one line for the progress display: "98.12% test accuracy", "diverged at step 7"
};

struct PlannedRun {
  std::string key;  // unique in the experiment, e.g. "seed/adadelta/s1"
  std::function<RunOutput(const ProgressFn&)> execute;
};

struct Context {
  Options options;  // steps, seeds, eval_every and data resolved; options.flags holds every own flag, given or default
  std::string out_dir;
  const DataSource* data = nullptr;  // limited as asked

  // An own flag's value (given or default); an Error for a name the experiment does not declare.
  const std::string& flag(const std::string& name) const;
  // The flag as a comma-separated list of integers (or one number) in [lo, hi]; a one-line Error
  // naming the flag otherwise.
  std::vector<int64_t> flag_integers(const std::string& name, int64_t lo, int64_t hi) const;
  std::vector<double> flag_numbers(const std::string& name, double lo, double hi) const;
  double flag_number(const std::string& name, double lo, double hi) const;
  int64_t flag_integer(const std::string& name, int64_t lo, int64_t hi) const;
};

// Markdown of the report and the figures it drew (render() in plot.h).
struct ReportText {
  std::string markdown;
  std::vector<std::string> figures;
};

class Experiment {
 public:
  virtual ~Experiment() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  virtual int64_t default_steps() const = 0;
  virtual int64_t default_seeds() const { return 1; }
  // What --data means when not given: MNIST, unless the claim needs a harder set.
  virtual std::string_view default_data() const { return "mnist"; }
  virtual int64_t default_eval_every(int64_t steps) const { return std::max<int64_t>(1, steps / 20); }
  virtual std::vector<FlagInfo> flags() const { return {}; }
  virtual std::vector<std::string> columns() const = 0;
  virtual std::vector<PlannedRun> plan(const Context& ctx) const = 0;
  // From the rows of the planned runs (this session's and earlier ones'): figures and Markdown.
  virtual ReportText report(const Context& ctx, const Table& table) const = 0;
};

// The command that reproduces the experiment with these options, for reports.
std::string command_line(const Context& ctx);
// A paragraph with the budget, data and command of the experiment.
std::string settings_paragraph(const Context& ctx, const std::string& recipe);
// The data set's name for figure titles: "MNIST", "Fashion-MNIST", or the directory given as --data.
std::string data_title(const DataSource& data);

std::unique_ptr<Experiment> make_bn_vs_nobn();
std::unique_ptr<Experiment> make_placement();
std::unique_ptr<Experiment> make_paper_fig1();
std::unique_ptr<Experiment> make_depth();
std::unique_ptr<Experiment> make_activations();
std::unique_ptr<Experiment> make_batch_composition();
std::unique_ptr<Experiment> make_robustness();
std::unique_ptr<Experiment> make_smoothness();
std::unique_ptr<Experiment> make_input_normalization();
std::unique_ptr<Experiment> make_weight_decay();
std::unique_ptr<Experiment> make_batch_size();
std::unique_ptr<Experiment> make_train_eval_gap();
std::unique_ptr<Experiment> make_deep_residual();

}  // namespace bnlab::experiments
