// bnlab train: the PyTorch MNIST example's flags and recipe (Adadelta lr 1.0, StepLR gamma 0.7).
#include <cstdio>
#include <memory>

#include "bnlab/checkpoint.h"
#include "bnlab/data.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "bnlab/train.h"
#include "commands.h"
#include "progress.h"

namespace bnlab::cli {
namespace {

struct TrainFlags {
  std::string model = "seed";
  std::string data = "mnist";
  TrainOptions train;
  std::string optimizer = "adadelta";
  int threads = 0;
  std::string save, metrics;
  int64_t limit_train = 0, limit_test = 0;
};

void run_train(const TrainFlags& f) {
  set_threads(f.threads);
  TrainOptions options = f.train;
  options.optimizer.kind = parse_optimizer_kind(f.optimizer);
  const NetworkSpec spec = load_spec(f.model);
  DataSource data = load_data(f.data);
  limit_samples(data.train, f.limit_train);
  limit_samples(data.test, f.limit_test);
  Network net = build_network(spec, {1, data.train.height, data.train.width});
  const int64_t classes = numel(net.output_shape());
  check_labels(data.train, classes);
  check_labels(data.test, classes);
  net.initialize(options.seed);

  std::printf("bnlab train: model %s, data %s (%lld train / %lld test images), %d threads, "
              "%s lr %g, batch %lld, seed %llu\n",
              f.model.c_str(), f.data.c_str(), static_cast<long long>(data.train.count),
              static_cast<long long>(data.test.count), threads(), f.optimizer.c_str(),
              options.optimizer.lr, static_cast<long long>(options.batch_size),
              static_cast<unsigned long long>(options.seed));
  ConsoleProgress console;
  Observers observers;
  observers.add(&console);
  std::unique_ptr<MetricsCsv> metrics;
  if (!f.metrics.empty()) {
    metrics = std::make_unique<MetricsCsv>(f.metrics);
    observers.add(metrics.get());
  }
  const TrainResult result = train(net, data, options, observers);
  std::printf("test accuracy: %.2f%%\n", result.test.accuracy());
  std::printf("trained %lld steps in %.1f s (%.0f images/s including evaluation)\n",
              static_cast<long long>(result.steps), result.seconds,
              static_cast<double>(result.steps * options.batch_size) / result.seconds);
  if (!f.save.empty()) {
    save_checkpoint(net, f.save, {{"bnlab.model", f.model}, {"bnlab.spec", spec.source}});
    std::printf("saved %s\n", f.save.c_str());
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto flags = std::make_shared<TrainFlags>();
  CLI::App* cmd = app.add_subcommand("train", "Train a network and report test accuracy after each epoch");
  cmd->add_option("--model", flags->model, "Preset (seed, seed-nobn, seed-bn-after-relu) or spec file")->capture_default_str();
  cmd->add_option("--data", flags->data, "mnist, fashion-mnist, or a directory of IDX files")->capture_default_str();
  cmd->add_option("--epochs", flags->train.epochs, "Epochs to train")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", flags->train.batch_size, "Training mini-batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--test-batch-size", flags->train.test_batch_size, "Evaluation batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--optimizer", flags->optimizer, "adadelta, sgd, adam or adamw")->capture_default_str()
      ->check(CLI::IsMember({"adadelta", "sgd", "adam", "adamw"}));
  cmd->add_option("--lr", flags->train.optimizer.lr, "Learning rate")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--gamma", flags->train.gamma, "StepLR: learning rate factor per epoch")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--momentum", flags->train.optimizer.momentum, "SGD momentum")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--nesterov", flags->train.optimizer.nesterov, "SGD: Nesterov momentum");
  cmd->add_option("--weight-decay", flags->train.optimizer.weight_decay, "L2 penalty (decoupled for adamw)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", flags->train.seed, "Random seed: initialization, shuffling, dropout")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--save", flags->save, "Write the trained model as safetensors (PyTorch state_dict names)");
  cmd->add_option("--metrics", flags->metrics, "Write step,epoch,train_loss,test_loss,test_accuracy,lr,seconds as CSV");
  cmd->add_option("--log-interval", flags->train.log_interval, "Batches between progress reports")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-steps", flags->train.max_steps, "Stop after this many optimizer steps (0: no limit)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit-train", flags->limit_train, "Use only the first N training images")->check(CLI::PositiveNumber);
  cmd->add_option("--limit-test", flags->limit_test, "Use only the first N test images")->check(CLI::PositiveNumber);
  cmd->callback([flags] { run_train(*flags); });
}

}  // namespace bnlab::cli
