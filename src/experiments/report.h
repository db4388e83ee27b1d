// The Markdown report of an experiment (<out>/report.md): a title, the settings, tables and
// figure links, in the order they are added.
#pragma once

#include <string>
#include <vector>

namespace bnlab::experiments {

class Markdown {
 public:
  explicit Markdown(const std::string& title);
  void paragraph(const std::string& text);
  void heading(const std::string& text);
  void table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
  // ![alt](file.png) with a link to the SVG beside it; `stem` is the figure's file stem.
  void figure(const std::string& stem, const std::string& alt);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// "97.12" for 97.123 with `digits` decimals; "n/a" for NaN.
std::string fixed(double v, int digits);
// "97.12 ± 0.08" (mean ± sample standard deviation).
std::string mean_pm(const std::vector<double>& v, int digits);

}  // namespace bnlab::experiments
