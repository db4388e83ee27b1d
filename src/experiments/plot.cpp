#include "experiments/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bnlab/error.h"

namespace bnlab::experiments {
namespace {

namespace fs = std::filesystem;

// Distinguishable on screen and in grey print (colorbrewer Dark2 plus black).
constexpr const char* kPalette[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a",
                                    "#66a61e", "#e6ab02", "#a6761d", "#000000"};
constexpr int kColors = sizeof kPalette / sizeof kPalette[0];

// A string for a gnuplot script: single quotes, a quote inside doubled.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A path for /bin/sh.
std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.8g", v);
  return buf;
}

std::string style_of(const Series& s, int color) {
  const std::string lc = " lc rgb " + quoted(kPalette[(color - 1) % kColors]);
  switch (s.style) {
    case Style::Lines: return "with lines lw 2" + lc;
    case Style::Dashed: return "with lines lw 2 dt 2" + lc;
    case Style::LinesPoints: return "with linespoints lw 2 pt 7 ps 0.8" + lc;
    case Style::Points: return "with points pt 7 ps 0.9" + lc;
    case Style::ErrorBars: return "with yerrorbars lw 2 pt 7 ps 1.2" + lc;
    case Style::Cross: return "with points pt 2 ps 2.5 lw 3" + lc;
  }
  return "with lines";
}

// gnuplot labels only the decades of a log axis: on a range of less than three decades, label
// 1, 2 and 5 times each power of ten instead.
std::string log_tics(const Panel& p) {
  double lo = p.ymin.value_or(HUGE_VAL), hi = p.ymax.value_or(0);
  for (const Series& s : p.series) {
    for (double y : s.y) {
      if (!(y > 0) || !std::isfinite(y)) continue;
      if (!p.ymin) lo = std::min(lo, y);
      if (!p.ymax) hi = std::max(hi, y);
    }
  }
  if (!(lo > 0) || !(hi >= lo) || hi / lo >= 1000) return "";
  std::string tics;
  for (double decade = std::pow(10.0, std::floor(std::log10(lo))); decade <= hi; decade *= 10) {
    for (double m : {1.0, 2.0, 5.0}) tics += (tics.empty() ? "" : ", ") + number(m * decade);
  }
  return "set ytics (" + tics + ")\n";
}

// The panel's settings and its plot command; `index` counts data blocks across the figure.
void write_panel(std::ostream& gp, const Panel& p, const std::string& data, int& index) {
  gp << "reset\nset grid xtics ytics lt 1 lw 1 lc rgb '#d8d8d8'\nset border lw 1\nset key " << p.key << " box opaque samplen 2\n";
  gp << "set title " << quoted(p.title) << "\nset xlabel " << quoted(p.xlabel) << "\nset ylabel " << quoted(p.ylabel) << "\n";
  if (p.logx) gp << "set logscale x\n";
  if (p.logy) gp << "set logscale y\nset format y '%g'\n" << log_tics(p);
  gp << "set xrange [" << (p.xmin ? number(*p.xmin) : "*") << ":" << (p.xmax ? number(*p.xmax) : "*") << "]\n";
  gp << "set yrange [" << (p.ymin ? number(*p.ymin) : "*") << ":" << (p.ymax ? number(*p.ymax) : "*") << "]\n";
  if (!p.xtics.empty()) {
    gp << "set xtics (";
    for (size_t i = 0; i < p.xtics.size(); ++i) gp << (i ? ", " : "") << quoted(p.xtics[i].second) << " " << number(p.xtics[i].first);
    gp << ")\n";
  }
  const bool nothing = std::all_of(p.series.begin(), p.series.end(), [](const Series& s) {
    return std::none_of(s.y.begin(), s.y.end(), [](double y) { return std::isfinite(y); });
  });
  if (nothing) {  // gnuplot needs something to draw: an empty panel with its labels (and no log axis of 0)
    gp << "unset logscale\nset key off\nplot [0:1][0:1] NaN notitle\n";
    return;
  }
  gp << "plot ";
  for (size_t i = 0; i < p.series.size(); ++i) {
    const Series& s = p.series[i];
    const int color = s.color > 0 ? s.color : static_cast<int>(i) + 1;
    gp << (i ? ", \\\n     " : "") << quoted(data) << " index " << index++
       << (s.style == Style::ErrorBars ? " using 1:2:3 " : " using 1:2 ")
       << (s.title.empty() ? "notitle " : "title " + quoted(s.title) + " ") << style_of(s, color);
  }
  gp << "\n";
}

void write_figure(std::ostream& gp, const Figure& f, const std::string& data) {
  int index = 0;
  if (f.rows * f.cols > 1 || !f.title.empty()) {
    gp << "set multiplot layout " << f.rows << "," << f.cols;
    if (!f.title.empty()) gp << " title " << quoted(f.title) << " font ',14'";
    gp << "\n";
  }
  for (const Panel& p : f.panels) write_panel(gp, p, data, index);
  if (f.rows * f.cols > 1 || !f.title.empty()) gp << "unset multiplot\n";
}

}  // namespace

void require_gnuplot() {
  const std::string probe = "gnuplot -e \"set terminal svg; set terminal pngcairo\" >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    fail("gnuplot", "plots", "gnuplot with the svg and pngcairo terminals is needed to draw the figures "
                             "(Debian: apt-get install gnuplot-nox)");
  }
}

std::vector<std::string> render(const Figure& figure, const std::string& dir) {
  const fs::path base = fs::path(dir) / figure.name;
  const std::string data = base.string() + ".dat", script = base.string() + ".gp";
  const std::string svg = base.string() + ".svg", png = base.string() + ".png";
  {
    std::ofstream out(data);
    for (const Panel& p : figure.panels) {
      for (const Series& s : p.series) {
        out << "# " << (p.title.empty() ? figure.name : p.title) << ": " << s.title << "\n";
        for (size_t i = 0; i < s.x.size(); ++i) {
          out << number(s.x[i]) << " " << number(s.y[i]);
          if (s.style == Style::ErrorBars) out << " " << number(i < s.err.size() ? s.err[i] : 0.0);
          out << "\n";
        }
        if (s.x.empty()) out << "NaN NaN 0\n";  // an empty block would shift the indices
        out << "\n\n";
      }
    }
    if (!out) fail(data, "write", "cannot write the figure's data");
  }
  {
    std::ofstream gp(script);
    gp << "# " << figure.name << ": drawn by bnlab experiment; rerun with `gnuplot " << figure.name << ".gp`\n";
    const std::string data_name = figure.name + ".dat";
    gp << "set terminal svg size " << figure.width << "," << figure.height << " dynamic noenhanced font 'Helvetica,13' background '#ffffff'\n";
    gp << "set output " << quoted(figure.name + ".svg") << "\n";
    write_figure(gp, figure, data_name);
    gp << "set output\nset terminal pngcairo size " << figure.width << "," << figure.height << " noenhanced font 'Helvetica,11' background '#ffffff'\n";
    gp << "set output " << quoted(figure.name + ".png") << "\n";
    write_figure(gp, figure, data_name);
    gp << "set output\n";
    if (!gp) fail(script, "write", "cannot write the gnuplot script");
  }
  const std::string log = base.string() + ".log";
  // Run in `dir`, so that the script names its files without a directory and can be moved.
  const std::string command = "cd " + shell_quoted(dir) + " && gnuplot " + shell_quoted(figure.name + ".gp") + " >" +
                              shell_quoted(fs::absolute(log).string()) + " 2>&1";
  if (std::system(command.c_str()) != 0) {
    std::ifstream in(log);
    std::string first;
    std::getline(in, first);
    fail(script, "gnuplot", "failed: " + first + " (see " + log + ")");
  }
  fs::remove(log);
  return {svg, png};
}

}  // namespace bnlab::experiments
