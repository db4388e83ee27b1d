// How `bnlab train` shows progress: a live line on a terminal, plain lines otherwise, and the
// metrics CSV (step,epoch,train_loss,test_loss,test_accuracy,lr,seconds).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bnlab/train.h"

namespace bnlab::cli {

class ConsoleProgress final : public TrainObserver {
 public:
  ConsoleProgress();
  void on_step(const StepReport& r) override;
  void on_epoch(const EpochReport& r) override;

 private:
  bool live_;
};

// Appends a row per report and flushes, so an interrupted run keeps the rows it reached.
class MetricsCsv final : public TrainObserver {
 public:
  explicit MetricsCsv(const std::string& path);
  // For a resumed run: keeps the rows up to `step` of an existing file and appends after them.
  MetricsCsv(const std::string& path, int64_t resume_after_step);
  ~MetricsCsv() override;
  MetricsCsv(const MetricsCsv&) = delete;
  MetricsCsv& operator=(const MetricsCsv&) = delete;
  void on_step(const StepReport& r) override;
  void on_epoch(const EpochReport& r) override;

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

class Observers final : public TrainObserver {
 public:
  void add(TrainObserver* o) { list_.push_back(o); }
  void on_step(const StepReport& r) override {
    for (auto* o : list_) o->on_step(r);
  }
  void on_epoch(const EpochReport& r) override {
    for (auto* o : list_) o->on_epoch(r);
  }

 private:
  std::vector<TrainObserver*> list_;
};

}  // namespace bnlab::cli
