#include <functional>
#include <string>

#include "bnlab/error.h"
#include "bnlab/train.h"
#include "layers/layer_kinds.h"

namespace bnlab {

void check_virtual_batches(const Network& net, int64_t batch, int64_t shard_size, const std::string& batch_name) {
  const int64_t last = batch > 0 ? shard_size % batch : 0;
  std::function<void(std::span<const NamedLayer>, const std::string&)> visit =
      [&](std::span<const NamedLayer> layers, const std::string& prefix) {
        for (const NamedLayer& entry : layers) {
          const std::string name = prefix + entry.name;
          visit(entry.layer->children(), name + ".");
          if (entry.layer->kind() != LayerKind::BatchNorm) continue;
          const int64_t vb = as<BatchNormLayer>(*entry.layer).options().virtual_batch;
          if (vb == 0) continue;
          const std::string layer = "layer '" + name + "' has virtual_batch=" + std::to_string(vb);
          if (batch % vb != 0) {
            throw Error(batch_name + " " + std::to_string(batch) + ": " + layer +
                        ", which does not divide it (every batch must split into whole ghost batches)");
          }
          if (last % vb == 1) {
            throw Error(batch_name + " " + std::to_string(batch) + ": the epoch's last batch has " +
                        std::to_string(last) + " samples and " + layer +
                        ": its last ghost batch would hold one sample (no batch statistics); change either");
          }
        }
      };
  visit(net.layers(), "");
}

}  // namespace bnlab
