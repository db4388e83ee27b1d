// The built-in networks: the files of specs/, embedded at build time (cmake/embed_specs.cmake
// writes the table), so that an installed bnlab needs no path to find them.
#pragma once

#include <cstddef>

namespace bnlab::detail {

struct BuiltinSpec {
  const char* name;  // the file's name without ".spec"
  const char* text;  // its bytes, NUL-terminated
};

extern const BuiltinSpec kBuiltinSpecs[];  // in the order of BNLAB_PRESETS (src/CMakeLists.txt)
extern const size_t kBuiltinSpecCount;

}  // namespace bnlab::detail
