// Values as the spec format writes them (Layer::spec_settings): integers in decimal, reals in the
// shortest form that reads back to the same double, booleans as true/false.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>

namespace bnlab {

inline std::string spec_value(int64_t v) { return std::to_string(v); }

inline std::string spec_value(double v) {
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, v);
  return ec == std::errc() ? std::string(text, end) : std::to_string(v);
}

inline std::string spec_value(bool v) { return v ? "true" : "false"; }

}  // namespace bnlab
