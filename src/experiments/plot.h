// Figures through gnuplot (Debian's gnuplot-nox): a figure is written as a data file and a
// script beside its outputs (<name>.dat, <name>.gp: rerun `gnuplot <name>.gp` to redraw), then
// gnuplot draws <name>.svg (svg terminal) and <name>.png (pngcairo). One well-kept program for
// both formats, with real axes, legends and log scales, and nothing of ours to maintain.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bnlab::experiments {

enum class Style { Lines, LinesPoints, Points, ErrorBars, Dashed, Cross };

struct Series {
  std::string title{};         // legend entry; empty: none
  std::vector<double> x{}, y{};  // NaN y: a gap
  std::vector<double> err{};   // Style::ErrorBars: half-height of each bar
  Style style = Style::Lines;
  int color = 0;               // 1-based index into the palette; 0: by position
};

struct Panel {
  std::string title{}, xlabel{}, ylabel{};
  bool logx = false, logy = false;
  std::optional<double> xmin{}, xmax{}, ymin{}, ymax{};
  std::vector<std::pair<double, std::string>> xtics{};  // labelled tics; empty: automatic
  std::string key = "bottom right";                   // gnuplot `set key` position
  std::vector<Series> series{};
};

struct Figure {
  std::string name{};  // file stem
  std::string title{};  // over all panels; empty: none
  int rows = 1, cols = 1;
  int width = 900, height = 560;  // pixels of the PNG (the SVG uses the same size)
  std::vector<Panel> panels{};    // row by row
};

// Throws Error unless `gnuplot` runs and has the svg and pngcairo terminals.
void require_gnuplot();

// Writes the figure into `dir`; returns the paths of the SVG and the PNG. Throws Error with
// gnuplot's message if it fails.
std::vector<std::string> render(const Figure& figure, const std::string& dir);

}  // namespace bnlab::experiments
