// Precise BN (bnlab/recalibrate.h): update_bn's recipe over the first N training batches.
#include "bnlab/recalibrate.h"

#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/rng.h"
#include "layers/layer_kinds.h"

namespace bnlab {
namespace {

// Every BatchNorm with running statistics, at any depth (residual bodies included).
void collect(std::span<const NamedLayer> layers, std::vector<BatchNormLayer*>& out) {
  for (const NamedLayer& l : layers) {
    if (l.layer->kind() == LayerKind::BatchNorm) {
      auto& bn = as<BatchNormLayer>(*l.layer);
      const BatchNormOptions& o = bn.options();
      // A frozen BN never updates its statistics: it keeps them, as update_bn skips what is not a _BatchNorm.
      if (o.track_running_stats && o.freeze == BatchNormFreeze::None) out.push_back(&bn);
      if (o.renorm && (o.renorm->warmup || o.renorm->ramp)) {
        throw Error("layer '" + l.name + "': renorm_warmup/renorm_ramp count num_batches_tracked, which the "
                    "recalibration would reset to its batch count (as update_bn does); recalibrate after training, "
                    "or use a renorm layer without a schedule");
      }
    }
    collect(l.layer->children(), out);
  }
}

// Sets momentum none for the passes and puts each layer's own back however they end.
class CumulativeMomentum {
 public:
  explicit CumulativeMomentum(std::vector<BatchNormLayer*> layers) : layers_(std::move(layers)) {
    for (BatchNormLayer* bn : layers_) {
      saved_.push_back(bn->options().momentum);
      bn->set_momentum(std::nullopt);
    }
  }
  ~CumulativeMomentum() {
    for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->set_momentum(saved_[i]);
  }
  CumulativeMomentum(const CumulativeMomentum&) = delete;
  CumulativeMomentum& operator=(const CumulativeMomentum&) = delete;

 private:
  std::vector<BatchNormLayer*> layers_;
  std::vector<std::optional<double>> saved_;
};

}  // namespace

void check_recalibration(const DataSource& data, const RecalibrateOptions& o, const std::string& where) {
  if (o.batches < 1) fail(where, "", "must be at least 1");
  if (o.batch_size < 1) fail("recalibrate", "batch_size", "must be positive");
  const Dataset& set = data.train;
  if (o.batches > set.count / o.batch_size) {
    fail(where, "", std::to_string(o.batches) + " batches of " + std::to_string(o.batch_size) + " are more than the " +
                        std::to_string(set.count) + " training images hold (" +
                        std::to_string(set.count / o.batch_size) + ")");
  }
}

RecalibrateResult recalibrate_batchnorm(Network& net, const DataSource& data, const RecalibrateOptions& o) {
  check_recalibration(data, o);
  const Dataset& set = data.train;
  std::vector<BatchNormLayer*> layers;
  collect(net.layers(), layers);
  if (layers.empty()) return {};  // update_bn returns at once too
  if (net.capacity() < o.batch_size) net.reserve(o.batch_size);
  const int64_t pixels = set.height * set.width;
  std::vector<float> input(static_cast<size_t>(o.batch_size * pixels));
  std::vector<uint8_t> labels(static_cast<size_t>(o.batch_size));
  std::vector<int64_t> indices(static_cast<size_t>(o.batch_size));
  const uint64_t key = derive_key(o.seed, static_cast<uint64_t>(Stream::Recalibrate));

  for (BatchNormLayer* bn : layers) bn->reset_state();  // running_mean 0, running_var 1, counter 0
  const CumulativeMomentum cumulative(layers);
  for (int64_t b = 0; b < o.batches; ++b) {
    std::iota(indices.begin(), indices.end(), b * o.batch_size);
    gather_batch(input.data(), labels.data(), set, data, indices.data(), o.batch_size);
    net.forward(input.data(), o.batch_size,
                {.mode = Mode::Train, .random_key = derive_key(key, static_cast<uint64_t>(b)),
                 .backward_follows = false, .dropout = o.dropout});
  }
  return {.layers = static_cast<int64_t>(layers.size()), .samples = o.batches * o.batch_size};
}

}  // namespace bnlab
