// "Train live": one training run at a time on a thread of its own, through the library's
// train() (bnlab/train.h) with an observer, stopped through its stop_requested flag. Every
// report the observer measures the network on fixed test images (accuracy on kProbeImages, and
// the 15th/50th/85th percentiles of the input of the last hidden nonlinearity on kPercentileImages,
// the paper's Figure 1 b/c), publishes a snapshot of the weights (what the page predicts with
// during the run) and appends an event that the page's event stream (SSE) sends on.
//
// Closing the page must not leave a run going: the run stops when no client has listened to the
// event stream or called the API for `idle_seconds` (touch() records that one did).
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bnlab/data.h"
#include "serve/model_weights.h"

namespace bnlab::serve {

constexpr int64_t kProbeImages = 500;      // test images for the accuracy curve
constexpr int64_t kPercentileImages = 64;  // test images for the percentiles
constexpr size_t kMaxRuns = 32;            // older runs are forgotten

struct RunRequest {
  std::string model;      // what the page shows: a preset's name or "pasted spec"
  std::string spec;       // its text (already parsed once)
  bool batchnorm = true;  // false: the spec's BatchNorm lines removed
  double lr = 1.0;        // Adadelta, as `bnlab train`
  int64_t steps = 100;
  int64_t batch_size = 64;
};

struct TrainingJobOptions {
  int threads = 0;
  double idle_seconds = 10;
};

class TrainingJob {
 public:
  TrainingJob(const DataSource& data, const TrainingJobOptions& options);
  ~TrainingJob();  // stops a run and waits for its thread
  TrainingJob(const TrainingJob&) = delete;
  TrainingJob& operator=(const TrainingJob&) = delete;

  // Checks the request (Error on a bad spec) and starts the run; false if one is running.
  bool start(RunRequest request, int* id);
  void stop();  // asks the running run, if any, to stop after its step
  void touch();
  bool running() const;

  // Events from number `from` on (each one JSON object), waiting up to `wait` for one.
  std::vector<std::string> events(size_t from, std::chrono::milliseconds wait);
  nlohmann::json runs() const;
  // The latest snapshot of run `id` (null: no such run, or nothing yet); id 0: the latest run.
  SharedWeights snapshot(int id) const;
  bool finished(int id) const;

 private:
  struct Run {
    int id = 0;
    RunRequest request;
    std::string state = "running";  // running, done, stopped, failed
    std::string message;
    SharedWeights snapshot;
    int64_t step = 0;
  };
  class Observer;
  void run(Run* record, Network net);
  void publish(nlohmann::json event);
  nlohmann::json run_json(const Run& r) const;
  Run* find(int id);
  const Run* find(int id) const;
  double idle_for() const;

  DataSource source_;  // the data, its test set cut to the first kProbeImages images (the probe)
  TrainingJobOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::unique_ptr<Run>> runs_;
  std::vector<std::string> events_;
  int next_id_ = 1;
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> last_seen_{0};  // steady clock, milliseconds
  std::thread thread_;
};

// A spec text without its BatchNorm1d/BatchNorm2d lines.
std::string without_batchnorm(const std::string& spec_text);

}  // namespace bnlab::serve
