// Built-in networks: the spec files of specs/ (seed.spec is exactly the tutorial's Net,
// ../shared/seed/batchnorm-tutorial.md, with its attribute names, so that checkpoints load into
// that class with strict=True), compiled into the library by cmake/embed_specs.cmake.
#include <span>
#include <string>
#include <vector>

#include "bnlab/spec.h"
#include "nn/builtin_specs.h"

namespace bnlab {
namespace {

std::span<const detail::BuiltinSpec> builtin_specs() { return {detail::kBuiltinSpecs, detail::kBuiltinSpecCount}; }

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const detail::BuiltinSpec& p : builtin_specs()) names.emplace_back(p.name);
  return names;
}

std::string preset_text(std::string_view name) {
  for (const detail::BuiltinSpec& p : builtin_specs())
    if (name == p.name) return p.text;
  return {};
}

}  // namespace bnlab
