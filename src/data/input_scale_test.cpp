// The three input scalings against their definitions, gather_batch using them, and the
// checkpoint rule: a flag that disagrees with what the weights were trained with is refused.
#include <gtest/gtest.h>

#include "bnlab/data.h"
#include "bnlab/error.h"
#include "bnlab/input_scale.h"

namespace bnlab {
namespace {

TEST(InputScale, EachScalingIsItsDefinition) {
  const InputNormalization raw{.scale = InputScale::Raw}, unit{.scale = InputScale::Unit};
  const InputNormalization standard{.scale = InputScale::Standardize, .mean = 0.25f, .std = 0.5f};
  for (int p : {0, 1, 7, 128, 254, 255}) {
    const auto pixel = static_cast<uint8_t>(p);
    EXPECT_EQ(raw(pixel), static_cast<float>(p)) << p;  // exactly the byte
    EXPECT_EQ(unit(pixel), static_cast<float>(p) / 255.0f) << p;
    EXPECT_EQ(standard(pixel), (static_cast<float>(p) / 255.0f - 0.25f) / 0.5f) << p;
    // of_unit and the affine form agree with the byte form (up to rounding for raw's * 255).
    for (const InputNormalization& n : {raw, unit, standard}) {
      const float u = static_cast<float>(p) / 255.0f;
      EXPECT_NEAR(n.of_unit(u), n(pixel), 1e-4f * (1 + std::abs(n(pixel)))) << p;
      EXPECT_NEAR((u - n.offset()) / n.divisor(), n(pixel), 1e-4f * (1 + std::abs(n(pixel)))) << p;
    }
  }
}

TEST(InputScale, NamesReadBackAndOthersAreRefused) {
  for (InputScale s : {InputScale::Raw, InputScale::Unit, InputScale::Standardize}) {
    EXPECT_EQ(parse_input_scale(input_scale_name(s), "--input-scale"), s);
  }
  try {
    parse_input_scale("normalize", "--input-scale");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--input-scale: 'normalize' is not an input scale (raw, unit or standardize)");
  }
}

TEST(InputScale, GatherBatchFeedsTheSourcesScaling) {
  DataSource source;  // statistics other than InputNormalization's defaults: they must come from here
  source.mean = 0.25f;
  source.std = 0.5f;
  Dataset& set = source.train;
  set.count = 1;
  set.height = 1;
  set.width = 3;
  set.images = {0, 100, 255};
  set.labels = {4};
  const int64_t index = 0;
  for (InputScale s : {InputScale::Raw, InputScale::Unit, InputScale::Standardize}) {
    source.scale = s;
    float out[3];
    uint8_t label = 0;
    gather_batch(out, &label, set, source, &index, 1);
    const InputNormalization n = input_normalization(source);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i], n(set.images[static_cast<size_t>(i)])) << input_scale_name(s);
    EXPECT_EQ(label, 4);
  }
  float out[3];
  uint8_t label = 0;
  source.scale = InputScale::Raw;
  gather_batch(out, &label, set, source, &index, 1);
  EXPECT_EQ(out[1], 100.0f);
  source.scale = InputScale::Standardize;
  gather_batch(out, &label, set, source, &index, 1);
  EXPECT_EQ(out[2], (1.0f - 0.25f) / 0.5f);
}

std::string refusal(const std::optional<std::string>& recorded, const std::optional<std::string>& flag) {
  try {
    checkpoint_input_scale(recorded, "m.safetensors", flag);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(InputScale, ACheckpointKeepsItsScaling) {
  EXPECT_EQ(checkpoint_input_scale("raw", "m.safetensors", std::nullopt), InputScale::Raw);
  EXPECT_EQ(checkpoint_input_scale("unit", "m.safetensors", "unit"), InputScale::Unit);
  // None recorded (PyTorch's state_dict): the example's standardization.
  EXPECT_EQ(checkpoint_input_scale(std::nullopt, "m.safetensors", std::nullopt), InputScale::Standardize);
  EXPECT_EQ(refusal("raw", "unit"), "--input-scale: unit, but m.safetensors was trained with raw");
  EXPECT_EQ(refusal(std::nullopt, "raw"),
            "--input-scale: raw, but m.safetensors was trained with standardize (its metadata names none: PyTorch's recipe)");
  EXPECT_EQ(refusal("zscore", std::nullopt),
            "m.safetensors: bnlab.input_scale: 'zscore' is not an input scale (raw, unit or standardize)");
}

}  // namespace
}  // namespace bnlab
