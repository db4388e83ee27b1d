// Specs written back as text: a parsed spec, or the spec of a built network (the fold writes the
// folded network this way, and an exporter can name every layer as it was built).
#include <algorithm>

#include "bnlab/spec.h"

namespace bnlab {
namespace {

void add_level(std::span<const NamedLayer> layers, NetworkSpec& spec) {
  for (const NamedLayer& entry : layers) {
    spec.layers.push_back(spec_line(entry));
    const std::span<const NamedLayer> children = entry.layer->children();
    if (children.empty()) continue;
    const size_t split = entry.layer->shortcut_begin();
    add_level(children.first(split), spec);
    if (split < children.size()) {
      spec.layers.push_back(shortcut_divider());
      add_level(children.subspan(split), spec);
    }
    spec.layers.push_back(block_end());
  }
}

}  // namespace

std::string spec_text(const NetworkSpec& spec) {
  std::string text;
  int depth = 0;  // residual blocks indent their lines
  for (const SpecLine& line : spec.layers) {
    if (line.type == "end") --depth;
    const int indent = line.type == "shortcut" ? depth - 1 : depth;  // level with its Residual
    text += std::string(2 * static_cast<size_t>(std::max(indent, 0)), ' ');
    if (!line.name.empty()) text += line.name + ": ";
    text += line.type;
    for (const SpecSetting& s : line.settings) text += " " + s.key + "=" + s.value;
    text += "\n";
    if (line.type == "Residual") ++depth;
  }
  return text;
}

SpecLine spec_line(const NamedLayer& entry) {
  SpecLine line;
  line.name = entry.name;
  line.type = std::string(entry.layer->type());
  for (auto& [key, value] : entry.layer->spec_settings()) line.settings.push_back({key, value, 0});
  return line;
}

SpecLine block_end() {
  SpecLine line;
  line.type = "end";
  return line;
}

SpecLine shortcut_divider() {
  SpecLine line;
  line.type = "shortcut";
  return line;
}

NetworkSpec network_spec(const Network& net) {
  NetworkSpec spec{"built network", {}};
  add_level(net.layers(), spec);
  return spec;
}

std::string spec_text(const Network& net) { return spec_text(network_spec(net)); }

}  // namespace bnlab
