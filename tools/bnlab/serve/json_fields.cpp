#include "serve/json_fields.h"

#include <cmath>

namespace bnlab::serve {
namespace {

[[noreturn]] void bad(const char* name, const std::string& what) { throw HttpError{400, std::string("request body: ") + name + ": " + what}; }

}  // namespace

nlohmann::json parse_body(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw HttpError{400, "request body: malformed JSON"};
  if (!j.is_object()) throw HttpError{400, "request body: must be a JSON object"};
  return j;
}

std::string string_field(const nlohmann::json& j, const char* name, const std::string& fallback) {
  if (!j.contains(name)) return fallback;
  if (!j[name].is_string()) bad(name, "must be a string");
  return j[name].get<std::string>();
}

bool bool_field(const nlohmann::json& j, const char* name, bool fallback) {
  if (!j.contains(name)) return fallback;
  if (!j[name].is_boolean()) bad(name, "must be true or false");
  return j[name].get<bool>();
}

double real_field(const nlohmann::json& j, const char* name, double fallback, double lo, double hi) {
  if (!j.contains(name)) return fallback;
  if (!j[name].is_number()) bad(name, "must be a number");
  const double v = j[name].get<double>();
  if (!(v >= lo && v <= hi)) bad(name, "must be in [" + nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() + "]");
  return v;
}

int64_t integer_field(const nlohmann::json& j, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  if (!j.contains(name)) return fallback;
  if (!j[name].is_number_integer()) bad(name, "must be an integer");
  const int64_t v = j[name].get<int64_t>();
  if (v < lo || v > hi) bad(name, "must be " + std::to_string(lo) + " to " + std::to_string(hi));
  return v;
}

}  // namespace bnlab::serve
