#include "progress.h"

#include <unistd.h>

#include <cstdlib>

#include "bnlab/error.h"

namespace bnlab::cli {

ConsoleProgress::ConsoleProgress() : live_(::isatty(STDOUT_FILENO) != 0) {}

void ConsoleProgress::on_step(const StepReport& r) {
  const double percent = 100.0 * static_cast<double>(r.seen) / static_cast<double>(r.epoch_size);
  const double rate = r.seconds > 0 ? static_cast<double>(r.step) / r.seconds : 0;
  std::printf("%sTrain Epoch: %lld [%lld/%lld (%.0f%%)]  Loss: %.6f  lr %.4g  %.1f steps/s%s",
              live_ ? "\r\033[K" : "", static_cast<long long>(r.epoch), static_cast<long long>(r.seen),
              static_cast<long long>(r.epoch_size), percent, r.train_loss, r.lr, rate,
              live_ ? "" : "\n");
  std::fflush(stdout);
}

void ConsoleProgress::on_epoch(const EpochReport& r) {
  if (live_) std::printf("\n");
  std::printf("Test set: Average loss: %.4f, Accuracy: %lld/%lld (%.2f%%)  [epoch %lld, %.1f s]\n",
              r.test.loss, static_cast<long long>(r.test.correct), static_cast<long long>(r.test.count),
              r.test.accuracy(), static_cast<long long>(r.epoch), r.seconds);
  std::fflush(stdout);
}

MetricsCsv::MetricsCsv(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) fail(path, "--metrics", "cannot create the file");
  std::fprintf(file_, "step,epoch,train_loss,test_loss,test_accuracy,lr,seconds\n");
  std::fflush(file_);
}

MetricsCsv::MetricsCsv(const std::string& path, int64_t resume_after_step) : path_(path) {
  std::vector<std::string> kept;
  if (std::FILE* old = std::fopen(path.c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, old)) {
      const bool header = kept.empty();
      if (header || std::strtoll(line, nullptr, 10) <= resume_after_step) kept.emplace_back(line);
    }
    std::fclose(old);
  }
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) fail(path, "--metrics", "cannot create the file");
  if (kept.empty()) kept.emplace_back("step,epoch,train_loss,test_loss,test_accuracy,lr,seconds\n");
  for (const std::string& l : kept) std::fputs(l.c_str(), file_);
  std::fflush(file_);
}

MetricsCsv::~MetricsCsv() {
  if (file_) std::fclose(file_);
}

void MetricsCsv::on_step(const StepReport& r) {
  std::fprintf(file_, "%lld,%lld,%.6f,,,%.6g,%.3f\n", static_cast<long long>(r.step),
               static_cast<long long>(r.epoch), r.train_loss, r.lr, r.seconds);
  std::fflush(file_);
}

void MetricsCsv::on_epoch(const EpochReport& r) {
  std::fprintf(file_, "%lld,%lld,%.6f,%.6f,%.2f,%.6g,%.3f\n", static_cast<long long>(r.step),
               static_cast<long long>(r.epoch), r.train_loss, r.test.loss, r.test.accuracy(), r.lr,
               r.seconds);
  std::fflush(file_);
}

}  // namespace bnlab::cli
