// The one exception bnlab throws for bad input: a single line "<where>: <field>: <what is wrong>".
// Only the command catches it; it prints the line and exits with status 2.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace bnlab {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error("<where>: <field>: <what>"); an empty field is left out.
[[noreturn]] void fail(std::string_view where, std::string_view field, std::string_view what);

}  // namespace bnlab
