// The experiments' own flags: looked up by name in the resolved options, and parsed as numbers
// or comma-separated lists with one-line errors that name the flag.
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "bnlab/error.h"
#include "experiments/suite.h"

namespace bnlab::experiments {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return parts;
    start = comma + 1;
  }
}

[[noreturn]] void bad(const std::string& name, const std::string& value, const std::string& what) {
  fail("experiment", "--" + name, "'" + value + "' " + what);
}

}  // namespace

const std::string& Context::flag(const std::string& name) const {
  const auto it = options.flags.find(name);
  if (it == options.flags.end()) fail("experiment", "--" + name, "not a flag of experiment " + options.name);
  return it->second;
}

std::vector<double> Context::flag_numbers(const std::string& name, double lo, double hi) const {
  const std::string& text = flag(name);
  std::vector<double> values;
  for (const std::string& part : split_commas(text)) {
    errno = 0;
    char* end = nullptr;
    const double v = part.empty() ? std::nan("") : std::strtod(part.c_str(), &end);
    if (part.empty() || errno != 0 || end != part.c_str() + part.size() || !std::isfinite(v))
      bad(name, text, "is not a comma-separated list of numbers");
    if (v < lo || v > hi) bad(name, text, "has " + part + ", outside " + field(lo) + " to " + field(hi));
    values.push_back(v);
  }
  return values;
}

std::vector<int64_t> Context::flag_integers(const std::string& name, int64_t lo, int64_t hi) const {
  const std::string& text = flag(name);
  std::vector<int64_t> values;
  for (const std::string& part : split_commas(text)) {
    errno = 0;
    char* end = nullptr;
    const long long v = part.empty() ? 0 : std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || errno != 0 || end != part.c_str() + part.size())
      bad(name, text, "is not a comma-separated list of integers");
    if (v < lo || v > hi) bad(name, text, "has " + part + ", outside " + std::to_string(lo) + " to " + std::to_string(hi));
    values.push_back(v);
  }
  return values;
}

double Context::flag_number(const std::string& name, double lo, double hi) const {
  const std::vector<double> v = flag_numbers(name, lo, hi);
  if (v.size() != 1) bad(name, flag(name), "must be one number");
  return v[0];
}

int64_t Context::flag_integer(const std::string& name, int64_t lo, int64_t hi) const {
  const std::vector<int64_t> v = flag_integers(name, lo, hi);
  if (v.size() != 1) bad(name, flag(name), "must be one integer");
  return v[0];
}

}  // namespace bnlab::experiments
