#include "experiments/report.h"

#include <cmath>
#include <cstdio>

#include "experiments/stats.h"

namespace bnlab::experiments {

Markdown::Markdown(const std::string& title) : text_("# " + title + "\n\n") {}

void Markdown::paragraph(const std::string& text) { text_ += text + "\n\n"; }

void Markdown::heading(const std::string& text) { text_ += "## " + text + "\n\n"; }

void Markdown::table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (const std::string& c : cells) s += " " + c + " |";
    text_ += s + "\n";
  };
  line(header);
  text_ += "|";
  for (size_t i = 0; i < header.size(); ++i) text_ += "---|";
  text_ += "\n";
  for (const auto& r : rows) line(r);
  text_ += "\n";
}

void Markdown::figure(const std::string& stem, const std::string& alt) {
  text_ += "![" + alt + "](" + stem + ".png)\n\n(vector version: [" + stem + ".svg](" + stem + ".svg))\n\n";
}

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "n/a";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string mean_pm(const std::vector<double>& v, int digits) {
  if (v.empty()) return "n/a";
  if (v.size() == 1) return fixed(v[0], digits);
  return fixed(mean(v), digits) + " ± " + fixed(stddev(v), digits);
}

}  // namespace bnlab::experiments
