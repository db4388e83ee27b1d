#include "experiments/results.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bnlab/atomic_file.h"
#include "bnlab/error.h"

namespace bnlab::experiments {
namespace {

Row split(const std::string& line) {
  Row fields;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return fields;
    start = comma + 1;
  }
}

std::string join(const Row& row) {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) line += (i ? "," : "") + row[i];
  return line;
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, [&](const ByteSink& sink) {
    sink({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  });
}

}  // namespace

size_t Table::column(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return i;
  fail("results", name, "no such column");
}

std::vector<const Row*> Table::where(const std::string& name, const std::string& value) const {
  const size_t c = column(name);
  std::vector<const Row*> out;
  for (const Row& r : rows)
    if (r[c] == value) out.push_back(&r);
  return out;
}

double Table::number(const Row& row, const std::string& name) const {
  const std::string& s = row[column(name)];
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nan("");
  return v;
}

const std::string& Table::text(const Row& row, const std::string& name) const { return row[column(name)]; }

ResultsFile::ResultsFile(std::string path, std::vector<std::string> columns) : path_(std::move(path)) {
  all_.columns = std::move(columns);
  std::ifstream in(path_);
  if (!in) return;
  std::string line;
  if (!std::getline(in, line)) return;
  if (split(line) != all_.columns) {
    fail(path_, "header", "'" + line + "' is not this experiment's header '" + join(all_.columns) +
                              "'; remove the file or choose another --out");
  }
  int64_t number = 1;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    Row row = split(line);
    if (row.size() != all_.columns.size()) {
      fail(path_, "line " + std::to_string(number), "has " + std::to_string(row.size()) + " fields, expected " +
                                                        std::to_string(all_.columns.size()));
    }
    runs_.insert(row[0]);
    all_.rows.push_back(std::move(row));
  }
}

void ResultsFile::append(const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    if (row.size() != all_.columns.size()) fail(path_, "row", "wrong number of fields for " + row[0]);
    for (const std::string& f : row)
      if (f.find_first_of(",\"\n\r") != std::string::npos) fail(path_, "row", "field '" + f + "' needs quoting");
    runs_.insert(row[0]);
    all_.rows.push_back(row);
  }
  std::string text = join(all_.columns) + "\n";
  for (const Row& row : all_.rows) text += join(row) + "\n";
  write_text(path_, text);
}

Table ResultsFile::table(const std::set<std::string>& keys) const {
  Table t{all_.columns, {}};
  for (const Row& row : all_.rows)
    if (keys.count(row[0])) t.rows.push_back(row);
  return t;
}

std::string field(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

std::string field(int64_t v) { return std::to_string(v); }

void check_settings(const std::string& dir, const std::map<std::string, std::string>& settings) {
  const std::string path = (std::filesystem::path(dir) / "settings.txt").string();
  std::ifstream in(path);
  if (in) {
    std::map<std::string, std::string> old;
    std::string line;
    while (std::getline(in, line)) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) old[line.substr(0, eq)] = line.substr(eq + 1);
    }
    for (const auto& [key, value] : settings) {
      auto it = old.find(key);
      if (it == old.end() || it->second != value) {
        fail(path, key, "the results there were made with " + key + "=" + (it == old.end() ? "?" : it->second) +
                            ", this run asks for " + value + "; use the same flags, another --out, or --fresh");
      }
    }
    return;
  }
  std::string text;
  for (const auto& [key, value] : settings) text += key + "=" + value + "\n";
  write_text(path, text);
}

}  // namespace bnlab::experiments
