// bnlab recalibrate: precise BN on a saved model (bnlab/recalibrate.h): every BatchNorm layer's
// running statistics re-estimated over the first N training batches, written to a new file.
#include <cstdio>
#include <memory>

#include "bnlab/checkpoint.h"
#include "bnlab/data.h"
#include "bnlab/loss.h"
#include "bnlab/recalibrate.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "bnlab/train.h"
#include "commands.h"
#include "flag_checks.h"

namespace bnlab::cli {
namespace {

struct RecalibrateFlags {
  std::string model = "seed";
  std::string weights, out;
  std::string data = "mnist";
  int64_t batches = 100, batch_size = 64, test_batch_size = 1000;
  std::string dropout = "on";
  uint64_t seed = 1;
  int64_t limit_train = 0, limit_test = 0;
  int threads = 0;
};

void print_accuracy(const char* when, const EvalResult& r) {
  std::printf("test accuracy %s %.2f%%  (loss %.4f, %lld/%lld)\n", when, r.accuracy(), r.loss,
              static_cast<long long>(r.correct), static_cast<long long>(r.count));
}

void run_recalibrate(const RecalibrateFlags& f) {
  set_threads(f.threads);
  const NetworkSpec spec = load_spec(f.model);
  DataSource data = load_data(f.data);
  limit_samples(data.train, f.limit_train);
  limit_samples(data.test, f.limit_test);
  Network net = build_network(spec, {1, data.train.height, data.train.width});
  require_log_probabilities(net);
  check_batch_fits(net, f.batch_size, "--batch-size", false);
  check_batch_fits(net, f.test_batch_size, "--test-batch-size", true);
  check_labels(data.test, numel(net.output_shape()));
  const RecalibrateOptions options{.batches = f.batches, .batch_size = f.batch_size,
                                   .dropout = f.dropout == "off" ? DropoutMode::Off : DropoutMode::AsMode,
                                   .seed = f.seed};
  check_recalibration(data, options, "--batches");
  Metadata meta = load_checkpoint(net, f.weights);
  data.scale = trained_input_scale(meta, f.weights, "");

  print_accuracy("before:", evaluate(net, data.test, data, f.test_batch_size));
  const RecalibrateResult r = recalibrate_batchnorm(net, data, options);
  std::printf("recalibrated %lld BatchNorm layers over %lld batches of %lld (the first %lld training images), "
              "dropout %s\n",
              static_cast<long long>(r.layers), static_cast<long long>(f.batches), static_cast<long long>(f.batch_size),
              static_cast<long long>(r.samples), f.dropout.c_str());
  print_accuracy("after: ", evaluate(net, data.test, data, f.test_batch_size));
  meta["bnlab.recalibrated"] = std::to_string(f.batches) + " batches of " + std::to_string(f.batch_size) + ", dropout " + f.dropout;
  save_checkpoint(net, f.out, meta);  // atomically: a failure leaves any old file
  std::printf("saved %s\n", f.out.c_str());
}

}  // namespace

void add_recalibrate_command(CLI::App& app) {
  auto flags = std::make_shared<RecalibrateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "recalibrate", "Precise BN: re-estimate every BatchNorm layer's running statistics over training batches");
  cmd->add_option("--model", flags->model, "Preset or spec file the weights belong to")->capture_default_str();
  cmd->add_option("--weights", flags->weights, "safetensors model (bnlab train --save, or PyTorch's state_dict)")->required();
  cmd->add_option("--out", flags->out, "Write the recalibrated model here (atomically; the input may be the same file)")->required();
  cmd->add_option("--batches", flags->batches, "Average over the first N training batches, in file order")
      ->capture_default_str()->check(integer_in(1, kMaxCount, "1 to 10^12"));
  cmd->add_option("--batch-size", flags->batch_size, "Samples per batch (use the batch BN normalized over in training)")
      ->capture_default_str()->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--dropout", flags->dropout,
                  "on: Dropout drops, as in training (PyTorch's update_bn); off: BN sees evaluation's activations "
                  "(Li et al.'s remedy for dropout's variance shift)")
      ->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--seed", flags->seed, "With --dropout on: the dropout masks")->capture_default_str();
  cmd->add_option("--data", flags->data, "mnist, fashion-mnist, or a directory of IDX files")->capture_default_str();
  cmd->add_option("--test-batch-size", flags->test_batch_size, "Evaluation batch size")->capture_default_str()->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--limit-train", flags->limit_train, "Use only the first N training images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--limit-test", flags->limit_test, "Use only the first N test images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(threads_range());
  cmd->callback([flags] { run_recalibrate(*flags); });
}

}  // namespace bnlab::cli
