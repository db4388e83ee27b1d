// Parser of the network description format (see bnlab/spec.h): lines -> SpecLine records.
// It checks only the syntax (and the nesting of Residual ... end blocks); build.cpp checks types,
// keys and values.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab {
namespace {

[[noreturn]] void syntax_error(const std::string& source, int line, int column,
                               const std::string& what) {
  throw Error(source + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + what);
}

// Letters, digits, '_' and '.': PyTorch's module names, indices such as "3" included.
bool is_layer_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  return true;
}

bool is_identifier(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return is_layer_name(s);
}

struct Token {
  std::string_view text;
  int column;
};

std::vector<Token> split_tokens(std::string_view line) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) tokens.push_back({line.substr(start, i - start), static_cast<int>(start) + 1});
  }
  return tokens;
}

// Residual blocks: a `Residual` line opens one, a line `shortcut` may split it into body and
// shortcut layers, a line `end` closes the innermost open one. Checks the nesting here so that
// build.cpp sees only well-formed blocks.
void check_blocks(const NetworkSpec& spec) {
  struct Open {
    const SpecLine* block;
    const SpecLine* shortcut;
  };
  std::vector<Open> open;
  const auto bare = [&](const SpecLine& line, const std::string& what) {
    if (!line.name.empty()) syntax_error(spec.source, line.line, 1, "'" + line.type + "' " + what + " and takes no name");
    if (!line.settings.empty()) {
      syntax_error(spec.source, line.line, line.settings[0].column, "'" + line.type + "' takes no settings");
    }
  };
  for (const SpecLine& line : spec.layers) {
    if (line.type == "Residual") {
      open.push_back({&line, nullptr});
    } else if (line.type == "shortcut") {
      bare(line, "starts a block's shortcut layers");
      if (open.empty()) syntax_error(spec.source, line.line, line.column, "'shortcut' outside a Residual block");
      if (open.back().shortcut) syntax_error(spec.source, line.line, line.column, "a Residual block has one 'shortcut' line");
      if (&line == open.back().block + 1) syntax_error(spec.source, open.back().block->line, open.back().block->column, "Residual block has no layers before 'shortcut'");
      open.back().shortcut = &line;
    } else if (line.type == "end") {
      bare(line, "closes a block");
      if (open.empty()) syntax_error(spec.source, line.line, line.column, "'end' without a Residual block to close");
      if (&line == open.back().block + 1) syntax_error(spec.source, open.back().block->line, open.back().block->column, "Residual block has no layers");
      if (open.back().shortcut && &line == open.back().shortcut + 1) syntax_error(spec.source, open.back().shortcut->line, open.back().shortcut->column, "'shortcut' has no layers before 'end'");
      open.pop_back();
    }
  }
  if (!open.empty()) {
    syntax_error(spec.source, open.back().block->line, open.back().block->column, "Residual block is not closed by a line 'end'");
  }
}

}  // namespace

NetworkSpec parse_spec(std::string_view text, const std::string& source) {
  NetworkSpec spec{source, {}};
  int line_number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<Token> tokens = split_tokens(line);
    if (tokens.empty()) {
      if (end == text.size()) break;
      continue;
    }
    SpecLine layer;
    layer.line = line_number;
    size_t t = 0;
    if (tokens[0].text.back() == ':') {
      std::string_view name = tokens[0].text.substr(0, tokens[0].text.size() - 1);
      if (!is_layer_name(name)) {
        syntax_error(source, line_number, tokens[0].column,
                     "layer name '" + std::string(name) + "' must be letters, digits, '_' or '.'");
      }
      layer.name = name;
      if (++t == tokens.size()) syntax_error(source, line_number, tokens[0].column, "layer type missing after the name");
    }
    if (!is_identifier(tokens[t].text) || tokens[t].text.find('=') != std::string_view::npos) {
      syntax_error(source, line_number, tokens[t].column,
                   "expected a layer type such as Conv2d, got '" + std::string(tokens[t].text) + "'");
    }
    layer.type = tokens[t].text;
    layer.column = tokens[t].column;
    for (++t; t < tokens.size(); ++t) {
      const std::string_view tok = tokens[t].text;
      const size_t eq = tok.find('=');
      if (eq == std::string_view::npos || eq == 0 || eq + 1 == tok.size()) {
        syntax_error(source, line_number, tokens[t].column,
                     "expected key=value, got '" + std::string(tok) + "'");
      }
      layer.settings.push_back({std::string(tok.substr(0, eq)), std::string(tok.substr(eq + 1)),
                                tokens[t].column});
    }
    spec.layers.push_back(std::move(layer));
    if (end == text.size()) break;
  }
  if (spec.layers.empty()) throw Error(source + ": network: no layers");
  check_blocks(spec);
  return spec;
}

NetworkSpec load_spec(const std::string& model) {
  if (std::string text = preset_text(model); !text.empty()) return parse_spec(text, "preset:" + model);
  std::ifstream in(model, std::ios::binary);
  if (!in) {
    std::string presets;
    for (const std::string& name : preset_names()) presets += (presets.empty() ? "" : ", ") + name;
    throw Error(model + ": model: neither a preset (" + presets + ") nor a readable spec file");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_spec(text.str(), model);
}

}  // namespace bnlab
