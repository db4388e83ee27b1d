// Classifies digit images (PNG or PGM, any size, either polarity) with a checkpoint of the seed
// network, through the library's image API: read_image -> center_digit -> normalize_digit
// (bnlab/image.h, the component bnlab::image: the one part of bnlab that needs libpng).
//
//   classify MODEL.safetensors IMAGE...
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <vector>

#include <bnlab/checkpoint.h>
#include <bnlab/error.h>
#include <bnlab/image.h>
#include <bnlab/spec.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors IMAGE...\n", argv[0]);
    return 2;
  }
  try {
    bnlab::DigitOptions options;  // 28x28, fit 20x20, MNIST's mean and std
    bnlab::Network net = bnlab::build_network(bnlab::load_spec("seed"), {1, options.size, options.size});
    const bnlab::Metadata meta = bnlab::load_checkpoint(net, argv[1]);
    // The pixels scaled as the model was trained (bnlab train --input-scale; none recorded: standardize).
    const auto recorded = meta.find(bnlab::kInputScaleKey);
    options.input.scale = bnlab::checkpoint_input_scale(
        recorded == meta.end() ? std::nullopt : std::optional(recorded->second), argv[1], std::nullopt);
    net.reserve_inference(1);
    const int64_t classes = bnlab::numel(net.output_shape());

    std::vector<float> x(static_cast<size_t>(options.size * options.size));
    for (int i = 2; i < argc; ++i) {
      const bnlab::Digit digit = bnlab::center_digit(bnlab::read_image(argv[i]), options);
      bnlab::normalize_digit(x.data(), digit.image, options);
      const float* logp = net.forward(x.data(), 1, {.mode = bnlab::Mode::Eval});
      const int64_t best = std::max_element(logp, logp + classes) - logp;
      std::printf("%s: %lld (probability %.3f%s)\n", argv[i], static_cast<long long>(best), std::exp(logp[best]),
                  digit.inverted ? ", inverted" : "");
    }
  } catch (const bnlab::Error& e) {
    std::fprintf(stderr, "classify: %s\n", e.what());
    return 2;
  }
  return 0;
}
