// bnlab eval: test loss and accuracy of a saved model.
#include <cstdio>
#include <memory>

#include "bnlab/checkpoint.h"
#include "bnlab/data.h"
#include "bnlab/fold.h"
#include "bnlab/loss.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "bnlab/train.h"
#include "commands.h"
#include "flag_checks.h"

namespace bnlab::cli {
namespace {

struct EvalFlags {
  std::string model = "seed";
  std::string weights;
  std::string data = "mnist";
  std::string input_scale;
  int64_t test_batch_size = 1000;
  int64_t limit_test = 0;
  int threads = 0;
  std::string outputs;
  bool fold_bn = false;
};

void run_eval(const EvalFlags& f) {
  set_threads(f.threads);
  const NetworkSpec spec = load_spec(f.model);
  DataSource data = load_data(f.data);
  limit_samples(data.test, f.limit_test);
  Network net = build_network(spec, {1, data.test.height, data.test.width});
  require_log_probabilities(net);
  check_batch_fits(net, f.test_batch_size, "--test-batch-size", true);
  check_labels(data.test, numel(net.output_shape()));
  data.scale = trained_input_scale(load_checkpoint(net, f.weights), f.weights, f.input_scale);
  if (f.fold_bn) net = std::move(fold_batchnorm(net).net);  // inference without BN passes; same results up to rounding
  std::vector<float> logp;
  const EvalResult r = evaluate(net, data.test, data, f.test_batch_size, f.outputs.empty() ? nullptr : &logp);
  if (!f.outputs.empty()) {
    const int64_t classes = numel(net.output_shape());
    write_safetensors(f.outputs, {{"output", DType::F32, {r.count, classes}, logp.data()}},
                      {{"bnlab.model", f.model}, {"bnlab.weights", f.weights}});
  }
  std::printf("test loss: %.4f\n", r.loss);
  std::printf("test accuracy: %.2f%%  (%lld/%lld)\n", r.accuracy(), static_cast<long long>(r.correct),
              static_cast<long long>(r.count));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a saved model on the test set");
  cmd->add_option("--model", flags->model, "Preset or spec file the weights belong to")->capture_default_str();
  cmd->add_option("--weights", flags->weights, "safetensors checkpoint (bnlab train --save, or PyTorch's state_dict)")->required();
  cmd->add_option("--data", flags->data, "mnist, fashion-mnist, or a directory of IDX files")->capture_default_str();
  cmd->add_option("--input-scale", flags->input_scale,
                  "raw, unit or standardize: must be what the weights were trained with (default: that, from the checkpoint)")
      ->check(input_scale_names());
  cmd->add_option("--test-batch-size", flags->test_batch_size, "Evaluation batch size")->capture_default_str()->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--limit-test", flags->limit_test, "Use only the first N test images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(threads_range());
  cmd->add_flag("--fold-bn", flags->fold_bn, "Fold batch norm into the layer before it first (faster inference)");
  cmd->add_option("--outputs", flags->outputs, "Write the network's outputs (log-probabilities) for every test image as safetensors");
  cmd->callback([flags] { run_eval(*flags); });
}

}  // namespace bnlab::cli
