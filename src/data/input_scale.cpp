#include "bnlab/input_scale.h"

#include "bnlab/error.h"

namespace bnlab {

InputScale parse_input_scale(const std::string& text, const std::string& where) {
  if (text == "raw") return InputScale::Raw;
  if (text == "unit") return InputScale::Unit;
  if (text == "standardize") return InputScale::Standardize;
  fail(where, "", "'" + text + "' is not an input scale (raw, unit or standardize)");
}

const char* input_scale_name(InputScale scale) {
  switch (scale) {
    case InputScale::Raw: return "raw";
    case InputScale::Unit: return "unit";
    case InputScale::Standardize: break;
  }
  return "standardize";
}

float InputNormalization::of_unit(float unit) const {
  switch (scale) {
    case InputScale::Raw: return unit * 255.0f;
    case InputScale::Unit: return unit;
    case InputScale::Standardize: break;
  }
  return (unit - mean) / std;
}

float InputNormalization::divisor() const {
  switch (scale) {
    case InputScale::Raw: return 1.0f / 255.0f;
    case InputScale::Unit: return 1.0f;
    case InputScale::Standardize: break;
  }
  return std;
}

InputScale checkpoint_input_scale(const std::optional<std::string>& recorded, const std::string& weights,
                                  const std::optional<std::string>& flag) {
  const InputScale trained =
      recorded ? parse_input_scale(*recorded, weights + ": " + kInputScaleKey) : InputScale::Standardize;
  if (!flag) return trained;
  const InputScale asked = parse_input_scale(*flag, "--input-scale");
  if (asked != trained) {
    fail("--input-scale", "", std::string(input_scale_name(asked)) + ", but " + weights + " was trained with " +
                                  input_scale_name(trained) + (recorded ? "" : " (its metadata names none: PyTorch's recipe)"));
  }
  return asked;
}

}  // namespace bnlab
