// Trains the tutorial's network (the "seed" preset) on MNIST with the library, as `bnlab train`
// does: one epoch, batch 64, Adadelta lr 1.0, then saves the model.
//
//   train_seed [--limit N] [--save FILE] DATA_DIR     (DATA_DIR holds MNIST's four IDX files)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <bnlab/checkpoint.h>
#include <bnlab/data.h>
#include <bnlab/error.h>
#include <bnlab/spec.h>
#include <bnlab/train.h>

namespace {

// Prints the running training loss and the test accuracy after each epoch.
struct Printer : bnlab::TrainObserver {
  void on_step(const bnlab::StepReport& r) override {
    std::printf("step %lld: loss %.4f\n", static_cast<long long>(r.step), r.train_loss);
  }
  void on_epoch(const bnlab::EpochReport& r) override {
    std::printf("epoch %lld: test accuracy %.2f%%\n", static_cast<long long>(r.epoch), r.test.accuracy());
  }
};

}  // namespace

int main(int argc, char** argv) {
  long long limit = 0;
  std::string data_dir, save;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--limit" && i + 1 < argc) limit = std::atoll(argv[++i]);
    else if (arg == "--save" && i + 1 < argc) save = argv[++i];
    else data_dir = arg;
  }
  if (data_dir.empty()) {
    std::fprintf(stderr, "usage: %s [--limit N] [--save FILE] DATA_DIR\n", argv[0]);
    return 2;
  }
  try {
    bnlab::DataSource data = bnlab::load_data(data_dir);
    bnlab::limit_samples(data.train, limit);
    bnlab::limit_samples(data.test, limit);

    bnlab::Network net = bnlab::build_network(bnlab::load_spec("seed"), {1, data.train.height, data.train.width});
    net.initialize(/*seed=*/1);

    bnlab::TrainOptions options;  // PyTorch's MNIST example: Adadelta lr 1.0, batch 64
    options.epochs = 1;
    options.log_interval = 20;
    Printer printer;
    const bnlab::TrainResult result = bnlab::train(net, data, options, printer);
    std::printf("trained %lld steps in %.1f s: test accuracy %.2f%%\n", static_cast<long long>(result.steps),
                result.seconds, result.test.accuracy());
    if (!save.empty()) {
      bnlab::save_checkpoint(net, save, {{"bnlab.model", "seed"}});
      std::printf("saved %s\n", save.c_str());
    }
  } catch (const bnlab::Error& e) {
    std::fprintf(stderr, "train_seed: %s\n", e.what());
    return 2;
  }
  return 0;
}
