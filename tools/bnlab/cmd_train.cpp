// bnlab train: the PyTorch MNIST example's flags and recipe (Adadelta lr 1.0, StepLR gamma 0.7).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "bnlab/checkpoint.h"
#include "bnlab/comm.h"
#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/data.h"
#include "bnlab/recalibrate.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "bnlab/train.h"
#include "commands.h"
#include "flag_checks.h"
#include "progress.h"
#include "stop_signal.h"

namespace bnlab::cli {
namespace {

struct TrainFlags {
  std::string model = "seed";
  std::string data = "mnist";
  std::string input_scale = "standardize";
  TrainOptions train;
  std::string optimizer = "adadelta";
  int threads = 0;
  std::string save, metrics;
  int64_t limit_train = 0, limit_test = 0;
  std::string resume;
  std::string on_nan = "stop";
  bool distributed = false, sync_bn = false;
  int64_t bucket_kb = 1024;
  std::string freeze_bn = "none";
};

// --freeze-bn: every BatchNorm line of the spec gets frozen=stats or frozen=all.
void freeze_batchnorm(NetworkSpec& spec, const std::string& freeze) {
  if (freeze == "none") return;
  for (SpecLine& line : spec.layers) {
    if (line.type != "BatchNorm1d" && line.type != "BatchNorm2d") continue;
    std::erase_if(line.settings, [](const SpecSetting& s) { return s.key == "frozen"; });
    line.settings.push_back({"frozen", freeze, line.column});
  }
}

// Threads per process: the --threads flag, else the cores shared among the processes that
// mpirun started on this node.
int threads_per_process(int flag, bool distributed) {
  if (flag > 0 || !distributed) return flag;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int processes = local ? std::max(1, std::atoi(local)) : 1;
  return std::max(1, available_cores() / processes);
}

void run_train(const TrainFlags& f) {
  if (f.sync_bn && !f.distributed) fail("--sync-bn", "", "needs --distributed");
  if (f.train.batch_size % f.train.accumulate != 0) {
    fail("--accumulate", "", std::to_string(f.train.accumulate) + " does not divide --batch-size " +
                                 std::to_string(f.train.batch_size));
  }
  if (!f.train.init_from.empty() && !f.resume.empty()) {
    fail("--init-from", "", "cannot be combined with --resume (a resumed run continues from its own checkpoint)");
  }
  const StopOnSignal stop;  // first: before MPI's and OpenMP's threads
  std::unique_ptr<Communicator> comm = f.distributed ? make_mpi_communicator() : nullptr;
  const bool lead = !comm || comm->rank() == 0;
  set_threads(threads_per_process(f.threads, f.distributed));
  TrainOptions options = f.train;
  options.comm = comm.get();
  options.sync_batchnorm = f.sync_bn;
  options.bucket_bytes = f.bucket_kb * 1024;
  options.optimizer.kind = parse_optimizer_kind(f.optimizer);
  NetworkSpec spec = load_spec(f.model);
  freeze_batchnorm(spec, f.freeze_bn);
  DataSource data = load_data(f.data);
  data.scale = parse_input_scale(f.input_scale, "--input-scale");
  limit_samples(data.train, f.limit_train);
  limit_samples(data.test, f.limit_test);
  Network net = build_network(spec, {1, data.train.height, data.train.width});
  require_log_probabilities(net);  // before any work or output
  check_batch_fits(net, f.train.batch_size, "--batch-size", false);
  const int processes_here = comm ? comm->size() : 1;
  // BN sees the micro-batch: virtual_batch must divide it
  check_virtual_batches(net, f.train.batch_size / f.train.accumulate,
                        (data.train.count + processes_here - 1) / processes_here,
                        f.train.accumulate > 1 ? "the micro-batch (--batch-size / --accumulate)" : "--batch-size");
  check_batch_fits(net, f.train.test_batch_size, "--test-batch-size", true);
  const int64_t classes = numel(net.output_shape());
  check_labels(data.train, classes);
  check_labels(data.test, classes);
  if (options.precise_bn > 0) {
    check_recalibration(data, {.batches = options.precise_bn, .batch_size = options.batch_size / options.accumulate},
                        "--precise-bn");
  }
  net.initialize(options.seed);  // --init-from's weights replace these in train()
  if (!options.init_from.empty()) {
    // The weights only work with the scaling they were trained with: a model's bnlab.input_scale,
    // a training checkpoint's run.input_scale (none: standardize, as PyTorch's state_dict).
    Metadata meta = read_safetensors(options.init_from).metadata;
    if (!meta.count(kInputScaleKey) && meta.count("run.input_scale")) meta[kInputScaleKey] = meta["run.input_scale"];
    trained_input_scale(meta, options.init_from, f.input_scale);
  }

  if (lead) {
    std::printf("bnlab train: model %s, data %s (%lld train / %lld test images), %d threads, "
                "%s lr %g, batch %lld, seed %llu",
                f.model.c_str(), f.data.c_str(), static_cast<long long>(data.train.count),
                static_cast<long long>(data.test.count), threads(), f.optimizer.c_str(),
                options.optimizer.lr, static_cast<long long>(options.batch_size),
                static_cast<unsigned long long>(options.seed));
    if (options.accumulate > 1) {
      std::printf(" (%lld micro-batches of %lld)", static_cast<long long>(options.accumulate),
                  static_cast<long long>(options.batch_size / options.accumulate));
    }
    if (comm) std::printf(", %d processes%s", comm->size(), f.sync_bn ? ", synchronized BN" : "");
    if (!options.init_from.empty()) std::printf(", from %s", options.init_from.c_str());
    std::printf("\n");
  }
  ConsoleProgress console;
  Observers observers;  // only rank 0 reports and writes files
  if (lead) observers.add(&console);
  std::unique_ptr<MetricsCsv> metrics;
  if (lead && !f.metrics.empty()) {
    metrics = f.resume.empty() ? std::make_unique<MetricsCsv>(f.metrics)
                               : std::make_unique<MetricsCsv>(f.metrics, checkpoint_step(f.resume));
    observers.add(metrics.get());
  }
  options.on_nan = f.on_nan == "skip" ? TrainOptions::OnNan::Skip : TrainOptions::OnNan::Stop;
  options.stop_requested = stop.requested();
  const TrainResult result = train(net, data, options, observers, f.resume);
  // Another process may have been the one interrupted: this one stopped with it.
  const int signal = stop.signal() ? stop.signal() : SIGINT;
  if (!lead) {
    if (result.interrupted) throw Interrupted{128 + signal};
    return;
  }
  if (result.interrupted) {
    std::printf("\ninterrupted by %s after step %lld: checkpoint written to %s\n"
                "resume with the same command and --resume %s\n",
                signal == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(result.steps),
                options.checkpoint_path.c_str(), options.checkpoint_path.c_str());
    std::fflush(stdout);
    throw Interrupted{128 + signal};
  }
  if (result.skipped > 0) {
    std::printf("skipped %lld batches with a non-finite loss or gradient\n", static_cast<long long>(result.skipped));
  }
  std::printf("test accuracy: %.2f%%\n", result.test.accuracy());
  const int processes = comm ? comm->size() : 1;
  std::printf("trained %lld steps in %.1f s (%.0f images/s including evaluation)\n",
              static_cast<long long>(result.steps), result.seconds,
              static_cast<double>(result.steps * options.batch_size * processes) / result.seconds);
  if (!f.save.empty()) {
    save_checkpoint(net, f.save, {{"bnlab.model", f.model}, {"bnlab.spec", spec.source}, {kInputScaleKey, f.input_scale}});
    std::printf("saved %s\n", f.save.c_str());
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto flags = std::make_shared<TrainFlags>();
  CLI::App* cmd = app.add_subcommand("train", "Train a network and report test accuracy after each epoch");
  cmd->add_option("--model", flags->model, "Preset (seed, seed-nobn, seed-bn-after-relu, ...: docs/guide.md) or spec file; it must end in LogSoftmax (the loss is NLL)")->capture_default_str();
  cmd->add_option("--data", flags->data, "mnist, fashion-mnist, or a directory of IDX files")->capture_default_str();
  cmd->add_option("--input-scale", flags->input_scale,
                  "Pixels as the network sees them: raw (0 to 255), unit (0 to 1) or standardize ((x - mean) / std of the "
                  "training pixels); kept in --save's checkpoint")
      ->capture_default_str()->check(input_scale_names());
  cmd->add_option("--epochs", flags->train.epochs, "Epochs to train")->capture_default_str()->check(integer_in(1, 1'000'000, "1 to 1,000,000"));
  cmd->add_option("--batch-size", flags->train.batch_size, "Training mini-batch size (at most what the network's buffers allow)")->capture_default_str()->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--test-batch-size", flags->train.test_batch_size, "Evaluation batch size")->capture_default_str()->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--optimizer", flags->optimizer, "adadelta, sgd, adam or adamw")->capture_default_str()
      ->check(CLI::IsMember({"adadelta", "sgd", "adam", "adamw"}));
  cmd->add_option("--lr", flags->train.optimizer.lr, "Learning rate")->capture_default_str()->check(real_in(0, kMaxReal, "0 to " + kMaxRealWords));
  cmd->add_option("--gamma", flags->train.gamma, "StepLR: learning rate factor per epoch")->capture_default_str()->check(real_in(1e-12, kMaxReal, "above 0 to " + kMaxRealWords));
  cmd->add_option("--momentum", flags->train.optimizer.momentum, "SGD momentum")->capture_default_str()->check(real_in(0, kMaxReal, "0 to " + kMaxRealWords));
  cmd->add_flag("--nesterov", flags->train.optimizer.nesterov, "SGD: Nesterov momentum");
  cmd->add_option("--weight-decay", flags->train.optimizer.weight_decay, "L2 penalty (decoupled for adamw)")->capture_default_str()->check(real_in(0, kMaxReal, "0 to " + kMaxRealWords));
  cmd->add_option("--seed", flags->train.seed, "Random seed: initialization, shuffling, dropout")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(threads_range());
  cmd->add_option("--save", flags->save, "Write the trained model as safetensors (PyTorch state_dict names)");
  cmd->add_option("--metrics", flags->metrics, "Write step,epoch,train_loss,test_loss,test_accuracy,lr,seconds as CSV");
  cmd->add_option("--log-interval", flags->train.log_interval, "Batches between progress reports")->capture_default_str()->check(integer_in(1, kMaxCount, "1 to 10^12"));
  cmd->add_option("--max-steps", flags->train.max_steps, "Stop after this many optimizer steps (0: no limit)")->capture_default_str()->check(integer_in(0, kMaxCount, "0 (no limit) to 10^12"));
  cmd->add_option("--limit-train", flags->limit_train, "Use only the first N training images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--limit-test", flags->limit_test, "Use only the first N test images")->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  flags->train.checkpoint_path = "checkpoint.safetensors";
  cmd->add_option("--checkpoint", flags->train.checkpoint_path,
                  "Training checkpoint file, written atomically (model, optimizer, position)")->capture_default_str();
  cmd->add_option("--checkpoint-every", flags->train.checkpoint_every,
                  "Write the training checkpoint every N steps and after each such epoch (0: only when interrupted)")
      ->capture_default_str()->check(integer_in(0, kMaxCount, "0 (only when interrupted) to 10^12"));
  cmd->add_option("--resume", flags->resume, "Continue the run saved in this training checkpoint (same flags)");
  cmd->add_option("--init-from", flags->train.init_from,
                  "Fine-tune: start from this checkpoint's weights and BN statistics (a --save file or a training "
                  "checkpoint of the same model) with a fresh optimizer, step 0 and the schedule from its start");
  cmd->add_option("--accumulate", flags->train.accumulate,
                  "Gradient accumulation: run each batch as K micro-batches of --batch-size/K (K must divide it), "
                  "each with its own BN statistics (num_batches_tracked counts them), one optimizer step per batch")
      ->capture_default_str()->check(integer_in(1, kMaxValues, "1 to " + std::to_string(kMaxValues)));
  cmd->add_option("--precise-bn", flags->train.precise_bn,
                  "Precise BN: before each test pass, re-estimate every BN layer's running statistics over the first N "
                  "training batches (of the micro-batch size, dropout on); this changes the saved model (0: off)")
      ->capture_default_str()->check(integer_in(0, kMaxCount, "0 (off) to 10^12"));
  cmd->add_flag("--distributed", flags->distributed,
                "Data-parallel over the MPI processes this was started in (mpirun -np P bnlab train --distributed)");
  cmd->add_flag("--sync-bn", flags->sync_bn, "With --distributed: batch statistics over all processes' batches");
  cmd->add_option("--bucket-kb", flags->bucket_kb,
                  "With --distributed: sum gradients in buckets of this many KiB during backward (0: one sum after it)")
      ->capture_default_str()->check(integer_in(0, 1 << 20, "0 to 1048576 (1 GiB)"));
  cmd->add_option("--on-nan", flags->on_nan, "On a NaN/Inf loss or gradient: stop, or skip the batch")
      ->capture_default_str()->check(CLI::IsMember({"stop", "skip"}));
  cmd->add_option("--freeze-bn", flags->freeze_bn,
                  "Freeze every BatchNorm layer: stats (running statistics used and never updated, the affine "
                  "trained) or all (the affine too), as the spec key frozen= (docs/guide.md)")
      ->capture_default_str()->check(CLI::IsMember({"none", "stats", "all"}));
  cmd->callback([flags] { run_train(*flags); });
}

}  // namespace bnlab::cli
