// A network of your own, twice: built in code from the layers' options structs, and parsed from
// a spec string. Each trains for a few SGD steps on a toy task (which quadrant of a noisy 12x12
// image is bright) with the loop written out: forward, loss, backward, optimizer step.
// Exits 1 unless the loss went down for both.
#include <cstdio>
#include <memory>
#include <vector>

#include <bnlab/error.h>
#include <bnlab/layers.h>
#include <bnlab/loss.h>
#include <bnlab/network.h>
#include <bnlab/optim.h>
#include <bnlab/rng.h>
#include <bnlab/spec.h>

namespace {

constexpr int64_t kBatch = 64, kSide = 12, kClasses = 4, kSteps = 30;

// x (kBatch, 1, kSide, kSide): uniform noise, plus 1 over the quadrant named by the label.
void make_batch(std::vector<float>& x, std::vector<uint8_t>& labels) {
  bnlab::Rng rng(42);
  x.resize(kBatch * kSide * kSide);
  labels.resize(kBatch);
  for (int64_t i = 0; i < kBatch; ++i) {
    labels[i] = static_cast<uint8_t>(rng.below(kClasses));
    const int64_t qy = labels[i] / 2, qx = labels[i] % 2, half = kSide / 2;
    for (int64_t y = 0; y < kSide; ++y) {
      for (int64_t x_ = 0; x_ < kSide; ++x_) {
        const float noise = static_cast<float>(rng.below(1000)) / 1000.0f;
        const bool lit = y / half == qy && x_ / half == qx;
        x[(i * kSide + y) * kSide + x_] = noise + (lit ? 1.0f : 0.0f);
      }
    }
  }
}

// Returns true when the last loss is below the first.
bool train_a_little(bnlab::Network& net, const char* title) {
  std::vector<float> x;
  std::vector<uint8_t> labels;
  make_batch(x, labels);
  net.initialize(/*seed=*/7);
  net.reserve(kBatch);
  const auto optimizer = bnlab::make_optimizer({.kind = bnlab::OptimizerKind::SGD, .lr = 0.05, .momentum = 0.9},
                                               static_cast<int64_t>(net.parameters().size()));
  std::vector<float> dlogp(kBatch * kClasses);
  double first = 0, last = 0;
  std::printf("%s: %zu layers, output %s\n", title, net.layer_count(), bnlab::to_string(net.output_shape()).c_str());
  for (int64_t step = 0; step < kSteps; ++step) {
    const float* logp = net.forward(x.data(), kBatch, {.mode = bnlab::Mode::Train, .random_key = static_cast<uint64_t>(step)});
    last = bnlab::nll_loss(dlogp.data(), logp, labels.data(), kBatch, kClasses);
    if (step == 0) first = last;
    net.zero_grad();
    net.backward(dlogp.data(), kBatch);
    optimizer->step(net.parameters(), net.gradients(), 0.05);
    if (step % 5 == 0 || step == kSteps - 1) std::printf("  step %2lld  loss %.4f\n", static_cast<long long>(step), last);
  }
  return last < first;
}

}  // namespace

int main() {
  try {
    // 1. In code: options structs with designated initializers; names become checkpoint keys.
    std::vector<bnlab::NamedLayer> layers;
    layers.push_back({"conv1", bnlab::make_conv2d({.out_channels = 8, .kernel_size = 3, .padding = 1})});
    layers.push_back({"conv1_bn", bnlab::make_batchnorm(bnlab::BatchNormKind::TwoD, {.momentum = 0.1})});
    layers.push_back({"relu1", bnlab::make_relu()});
    layers.push_back({"pool1", bnlab::make_maxpool2d({.kernel_size = 2})});
    layers.push_back({"flatten", bnlab::make_flatten()});
    layers.push_back({"fc1", bnlab::make_linear({.out_features = 32})});
    layers.push_back({"fc1_bn", bnlab::make_batchnorm(bnlab::BatchNormKind::OneD, {})});
    layers.push_back({"relu2", bnlab::make_relu()});
    layers.push_back({"fc2", bnlab::make_linear({.out_features = kClasses})});
    layers.push_back({"log_softmax", bnlab::make_log_softmax()});
    bnlab::Network coded(std::move(layers), {1, kSide, kSide});
    const bool coded_ok = train_a_little(coded, "built in code");

    // 2. The same network as a spec (docs/guide.md lists every layer and key).
    const char* spec = R"(
      conv1:    Conv2d out_channels=8 kernel_size=3 padding=1
      conv1_bn: BatchNorm2d
                ReLU
                MaxPool2d kernel_size=2
                Flatten
      fc1:      Linear out_features=32
      fc1_bn:   BatchNorm1d
                ReLU
      fc2:      Linear out_features=4
                LogSoftmax
    )";
    bnlab::Network parsed = bnlab::build_network(bnlab::parse_spec(spec, "custom_network.cpp"), {1, kSide, kSide});
    const bool parsed_ok = train_a_little(parsed, "parsed from a spec");

    if (!coded_ok || !parsed_ok) {
      std::fprintf(stderr, "custom_network: the loss did not go down\n");
      return 1;
    }
    std::printf("the loss went down for both\n");
  } catch (const bnlab::Error& e) {
    std::fprintf(stderr, "custom_network: %s\n", e.what());
    return 2;
  }
  return 0;
}
