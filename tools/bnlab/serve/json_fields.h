// Fields of a request's JSON body, checked: a missing or wrong one is an HttpError 400 naming it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace bnlab::serve {

struct HttpError {
  int status;
  std::string message;
};

// The body as a JSON object (400: malformed, or not an object).
nlohmann::json parse_body(const std::string& body);
std::string string_field(const nlohmann::json& j, const char* name, const std::string& fallback);
bool bool_field(const nlohmann::json& j, const char* name, bool fallback);
double real_field(const nlohmann::json& j, const char* name, double fallback, double lo, double hi);
int64_t integer_field(const nlohmann::json& j, const char* name, int64_t fallback, int64_t lo, int64_t hi);

}  // namespace bnlab::serve
