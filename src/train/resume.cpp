#include "train/resume.h"

#include <cstdio>
#include <cstdlib>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"

namespace bnlab {
namespace {

constexpr const char* kKind = "bnlab training checkpoint 1";
// Options that checkpoints hold since a later version, with the value that older files meant.
const Metadata kAddedLater = {{"run.accumulate", "1"}, {"run.precise_bn", "0"}, {"run.input_scale", "standardize"}};

std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

// The options that decide the bits of a run: a resume with other values would not continue it.
Metadata run_identity(const TrainOptions& o, const DataSource& data) {
  return {{"run.seed", std::to_string(o.seed)},
          {"run.accumulate", std::to_string(o.accumulate)},
          {"run.precise_bn", std::to_string(o.precise_bn)},
          {"run.batch_size", std::to_string(o.batch_size)},
          {"run.optimizer", optimizer_name(o.optimizer.kind)},
          {"run.lr", exact(o.optimizer.lr)},
          {"run.gamma", exact(o.gamma)},
          {"run.momentum", exact(o.optimizer.momentum)},
          {"run.nesterov", o.optimizer.nesterov ? "true" : "false"},
          {"run.weight_decay", exact(o.optimizer.weight_decay)},
          {"run.data", data.name},
          {"run.input_scale", input_scale_name(data.scale)},
          {"run.processes", std::to_string(o.comm ? o.comm->size() : 1)},
          {"run.sync_batchnorm", o.sync_batchnorm ? "true" : "false"},
          {"run.train_images", std::to_string(data.train.count)}};
}

const std::string& field(const Metadata& meta, const std::string& path, const std::string& key) {
  auto it = meta.find(key);
  if (it == meta.end()) fail(path, key, "missing from the checkpoint's metadata");
  return it->second;
}

int64_t integer(const Metadata& meta, const std::string& path, const std::string& key) {
  const std::string& text = field(meta, path, key);
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 0) fail(path, key, "'" + text + "' is not a count");
  return v;
}

double real(const Metadata& meta, const std::string& path, const std::string& key) {
  const std::string& text = field(meta, path, key);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') fail(path, key, "'" + text + "' is not a number");
  return v;
}

}  // namespace

int64_t checkpoint_step(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  if (field(file.metadata, path, "bnlab.kind") != kKind) {
    fail(path, "bnlab.kind", "not a bnlab training checkpoint (a model file cannot be resumed)");
  }
  return integer(file.metadata, path, "at.step");
}

void save_train_checkpoint(const std::string& path, Network& net, Optimizer& optimizer,
                           const TrainOptions& options, const DataSource& data,
                           const TrainPosition& p) {
  std::vector<TensorView> tensors = net.state_dict();
  for (const TensorView& t : optimizer.state()) tensors.push_back(t);
  Metadata meta = run_identity(options, data);
  meta["format"] = "pt";
  meta["bnlab.kind"] = kKind;
  meta["at.epoch"] = std::to_string(p.epoch);
  meta["at.batch"] = std::to_string(p.batch);
  meta["at.step"] = std::to_string(p.step);
  meta["at.epoch_loss"] = exact(p.epoch_loss);
  meta["at.epoch_batches"] = std::to_string(p.epoch_batches);
  meta["at.interval_loss"] = exact(p.interval_loss);
  meta["at.interval_batches"] = std::to_string(p.interval_batches);
  meta["at.skipped"] = std::to_string(p.skipped);
  meta["at.seconds"] = exact(p.seconds);
  write_safetensors(path, tensors, meta);
}

void load_initial_weights(const std::string& path, Network& net) {
  const SafetensorsFile file = read_safetensors(path);
  auto kind = file.metadata.find("bnlab.kind");
  if (kind == file.metadata.end() || kind->second != kKind) {
    load_checkpoint(net, path);  // a model file: exactly the network's tensors
    return;
  }
  copy_tensors(file, net.state_dict());
}

TrainPosition load_train_checkpoint(const std::string& path, Network& net, Optimizer& optimizer,
                                    const TrainOptions& options, const DataSource& data) {
  const SafetensorsFile file = read_safetensors(path);
  if (field(file.metadata, path, "bnlab.kind") != kKind) {
    fail(path, "bnlab.kind", "not a bnlab training checkpoint (a model file cannot be resumed)");
  }
  for (const auto& [key, value] : run_identity(options, data)) {
    auto older = kAddedLater.find(key);  // absent from the files of earlier versions: its default
    if (older != kAddedLater.end() && !file.metadata.count(key) && value == older->second) continue;
    const std::string& saved = field(file.metadata, path, key);
    if (saved != value) {
      fail(path, key, "the checkpoint was made with " + saved + ", this run has " + value +
                          " (a resumed run must use the same settings)");
    }
  }
  std::vector<TensorView> tensors = net.state_dict();
  for (const TensorView& t : optimizer.state()) tensors.push_back(t);
  copy_tensors(file, tensors);
  const Metadata& m = file.metadata;
  TrainPosition p;
  p.epoch = integer(m, path, "at.epoch");
  p.batch = integer(m, path, "at.batch");
  p.step = integer(m, path, "at.step");
  p.epoch_loss = real(m, path, "at.epoch_loss");
  p.epoch_batches = integer(m, path, "at.epoch_batches");
  p.interval_loss = real(m, path, "at.interval_loss");
  p.interval_batches = integer(m, path, "at.interval_batches");
  p.skipped = integer(m, path, "at.skipped");
  p.seconds = real(m, path, "at.seconds");
  if (p.batch * options.batch_size > data.train.count) fail(path, "at.batch", "beyond the end of the epoch");
  return p;
}

}  // namespace bnlab
