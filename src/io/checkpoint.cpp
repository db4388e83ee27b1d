// A network's state_dict to and from safetensors, strictly as PyTorch's load_state_dict.
#include <cstring>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"

namespace bnlab {

void save_checkpoint(Network& net, const std::string& path, const Metadata& metadata) {
  Metadata meta = metadata;
  meta.emplace("format", "pt");  // what safetensors' PyTorch loader expects to find
  write_safetensors(path, net.state_dict(), meta);
}

void copy_tensors(const SafetensorsFile& file, const std::vector<TensorView>& into) {
  // Check everything before changing anything, so a bad file leaves the targets as they were.
  for (const TensorView& t : into) {
    if (t.dtype == DType::F32) file.f32(t.name, t.shape);
    else file.i64(t.name, t.shape);
  }
  for (const TensorView& t : into) {
    const SafetensorsEntry& e = file.entries.at(t.name);
    std::memcpy(t.data, file.data.data() + e.begin, static_cast<size_t>(e.end - e.begin));
  }
}

Metadata load_checkpoint(Network& net, const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  const std::vector<TensorView> state = net.state_dict();
  // Missing or mis-shaped tensors first (the likelier mistake), then extra ones; nothing is
  // copied until all is checked.
  for (const TensorView& t : state) {
    if (t.dtype == DType::F32) file.f32(t.name, t.shape);
    else file.i64(t.name, t.shape);
  }
  for (const auto& [name, entry] : file.entries) {
    bool known = false;
    for (const TensorView& t : state) known = known || t.name == name;
    if (!known) fail(path, "tensor '" + name + "'", "unexpected: the network has no such tensor");
  }
  copy_tensors(file, state);
  return file.metadata;
}

}  // namespace bnlab
