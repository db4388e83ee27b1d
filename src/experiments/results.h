// The raw results of an experiment: one CSV file (header, then rows; the first column is the run
// key), rewritten atomically after each finished run so that an interrupted experiment leaves
// complete runs only, and a settings file that keeps a resumed experiment from mixing budgets.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace bnlab::experiments {

using Row = std::vector<std::string>;

struct Table {
  std::vector<std::string> columns;
  std::vector<Row> rows;

  // Index of a column; throws Error if absent.
  size_t column(const std::string& name) const;
  // Rows whose `column` equals `value`, in file order.
  std::vector<const Row*> where(const std::string& column, const std::string& value) const;
  // The field as a number; NaN for an empty field or "nan".
  double number(const Row& row, const std::string& column) const;
  const std::string& text(const Row& row, const std::string& column) const;
};

class ResultsFile {
 public:
  // Reads `path` if it exists (its header must equal `columns`), else starts empty.
  ResultsFile(std::string path, std::vector<std::string> columns);
  bool has_run(const std::string& key) const { return runs_.count(key) > 0; }
  // Appends a run's rows (each of columns().size() fields, none holding ',', '"' or a line
  // break) and rewrites the file atomically.
  void append(const std::vector<Row>& rows);
  // Only the rows of the runs in `keys`.
  Table table(const std::set<std::string>& keys) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  Table all_;
  std::set<std::string> runs_;
};

// Numbers as CSV fields: "%.6g"-style, "nan" for NaN, and integers without a decimal point.
std::string field(double v);
std::string field(int64_t v);

// <dir>/settings.txt holds key=value lines that must match for results to be reused; writes it
// when absent, throws Error naming the first differing key otherwise.
void check_settings(const std::string& dir, const std::map<std::string, std::string>& settings);

}  // namespace bnlab::experiments
