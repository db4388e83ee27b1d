// How a pixel 0..255 becomes the network's input: raw (the byte itself), unit (pixel / 255, on
// [0, 1]) or standardize ((pixel / 255 - mean) / std with the data set's mean and deviation, the
// PyTorch example's transforms.Normalize). A model only works with the scaling it was trained
// with, so `bnlab train --save` records it in the checkpoint's metadata and eval, predict,
// recalibrate, export and serve read it back (PyTorch's checkpoints, which hold none, are
// standardize: the example's recipe).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bnlab {

enum class InputScale { Raw, Unit, Standardize };

// "raw", "unit" or "standardize"; anything else throws Error("<where>: '<text>' is not ...").
InputScale parse_input_scale(const std::string& text, const std::string& where);
const char* input_scale_name(InputScale scale);

// The checkpoint metadata key that holds input_scale_name.
inline constexpr const char* kInputScaleKey = "bnlab.input_scale";

struct InputNormalization {
  InputScale scale = InputScale::Standardize;
  float mean = 0.1307f, std = 0.3081f;  // of the training pixels on [0, 1]; standardize only

  // The network's input for a pixel 0..255. Standardize is (pixel / 255 - mean) / std, the same
  // float operations as torchvision's ToTensor then Normalize.
  float operator()(uint8_t pixel) const {
    const float unit = static_cast<float>(pixel) / 255.0f;
    switch (scale) {
      case InputScale::Raw: return static_cast<float>(pixel);
      case InputScale::Unit: return unit;
      case InputScale::Standardize: break;
    }
    return (unit - mean) / std;
  }
  // The same for a pixel given on [0, 1] (a perturbed image).
  float of_unit(float unit) const;
  // As (pixel on [0, 1] - offset) / divisor, for consumers that take an affine map (ONNX, and
  // gradients in the pixels: d input / d pixel = 1 / divisor).
  float offset() const { return scale == InputScale::Standardize ? mean : 0.0f; }
  float divisor() const;
};

// The scaling a loaded checkpoint was trained with, given its metadata value (none: standardize)
// and the command's --input-scale (none: the checkpoint's). A flag that disagrees with the
// checkpoint throws Error("--input-scale: unit, but <weights> was trained with raw").
InputScale checkpoint_input_scale(const std::optional<std::string>& recorded, const std::string& weights,
                                  const std::optional<std::string>& flag);

}  // namespace bnlab
