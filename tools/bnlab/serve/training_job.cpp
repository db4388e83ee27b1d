#include "serve/training_job.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "bnlab/train.h"

namespace bnlab::serve {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool is_nonlinearity(const Layer& l) {
  return l.kind() == LayerKind::ReLU || l.kind() == LayerKind::Sigmoid || l.kind() == LayerKind::Tanh;
}

// The layer whose output is the input of the last hidden nonlinearity (else the layer before the output).
size_t percentile_layer(const Network& net) {
  size_t layer = net.layer_count() >= 2 ? net.layer_count() - 2 : 0;
  for (size_t i = 1; i < net.layer_count(); ++i)
    if (is_nonlinearity(net.layer(i))) layer = i - 1;
  return layer;
}

double percentile(const std::vector<float>& sorted, double q) {
  const double at = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

std::string without_batchnorm(const std::string& text) {
  NetworkSpec spec = parse_spec(text, "spec");
  std::erase_if(spec.layers, [](const SpecLine& l) { return l.type == "BatchNorm1d" || l.type == "BatchNorm2d"; });
  return bnlab::spec_text(spec);
}

// Measures the network at each report, on the training thread between two steps.
class TrainingJob::Observer final : public TrainObserver {
 public:
  Observer(TrainingJob& job, Run& run, Network& net) : job_(job), run_(run), net_(net),
      probe_(build_digit_network(run.request.spec, run.request.model)), layer_(percentile_layer(probe_)) {
    probe_.reserve(kPercentileImages, {.fusion = Fusion::None});  // the layer's own output
    x_.resize(static_cast<size_t>(kPercentileImages * 28 * 28));
    labels_.resize(static_cast<size_t>(kPercentileImages));
    std::vector<int64_t> first(static_cast<size_t>(kPercentileImages));
    for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
    gather_batch(x_.data(), labels_.data(), job.source_.test, job.source_, first.data(), kPercentileImages);
  }

  void on_step(const StepReport& r) override {
    const EvalResult probe = evaluate(net_, job_.source_.test, job_.source_, kProbeImages);
    SharedWeights snap = capture_weights(net_, run_.request.spec, "run " + std::to_string(run_.id) + " at step " + std::to_string(r.step));
    restore_weights(probe_, *snap);
    probe_.forward(x_.data(), kPercentileImages, {.mode = Mode::Eval});
    const float* v = probe_.activation(layer_);
    std::vector<float> sorted(v, v + kPercentileImages * numel(probe_.output_shape(layer_)));
    std::sort(sorted.begin(), sorted.end());
    {
      const std::lock_guard lock(job_.mutex_);
      run_.snapshot = std::move(snap);
      run_.step = r.step;
    }
    job_.publish({{"type", "point"}, {"run", run_.id}, {"step", r.step}, {"loss", r.train_loss},
                  {"accuracy", probe.accuracy()}, {"layer", probe_.layer_name(layer_)},
                  {"p15", percentile(sorted, 0.15)}, {"p50", percentile(sorted, 0.50)}, {"p85", percentile(sorted, 0.85)},
                  {"seconds", r.seconds}});
  }

 private:
  TrainingJob& job_;
  Run& run_;
  Network& net_;
  Network probe_;  // a copy with every layer's own output, for the percentiles
  size_t layer_;
  std::vector<float> x_;
  std::vector<uint8_t> labels_;
};

TrainingJob::TrainingJob(const DataSource& data, const TrainingJobOptions& options) : source_(data), options_(options) {
  limit_samples(source_.test, kProbeImages);
  touch();
}

TrainingJob::~TrainingJob() {
  stop();
  if (thread_.joinable()) thread_.join();
}

bool TrainingJob::start(RunRequest request, int* id) {
  if (!request.batchnorm) request.spec = without_batchnorm(request.spec);
  Network net = build_digit_network(request.spec, request.model);  // Error: the page shows it
  require_log_probabilities(net);
  check_labels(source_.train, numel(net.output_shape()));
  net.initialize(1);
  std::unique_lock lock(mutex_);
  if (running_) return false;
  if (thread_.joinable()) thread_.join();  // the last run has finished; its thread ends at once
  if (runs_.size() >= kMaxRuns) runs_.erase(runs_.begin());
  runs_.push_back(std::make_unique<Run>());
  Run* r = runs_.back().get();
  r->id = *id = next_id_++;
  r->request = std::move(request);
  running_ = true;
  stop_.store(false);
  touch();
  lock.unlock();
  publish({{"type", "run"}, {"run", run_json(*r)}});
  thread_ = std::thread([this, r, n = std::move(net)]() mutable { run(r, std::move(n)); });
  return true;
}

void TrainingJob::run(Run* r, Network net) {
  set_threads(options_.threads);
  const int64_t batches = (source_.train.count + r->request.batch_size - 1) / r->request.batch_size;
  TrainOptions options;
  options.epochs = (r->request.steps + batches - 1) / batches;
  options.batch_size = r->request.batch_size;
  options.test_batch_size = kProbeImages;
  options.optimizer = {.kind = OptimizerKind::Adadelta, .lr = r->request.lr};
  options.log_interval = std::clamp<int64_t>(r->request.steps / 100, 5, 25);  // points on the curves
  options.max_steps = r->request.steps;
  options.stop_requested = &stop_;
  std::string state = "done", message;
  // The watchdog: no page has listened for idle_seconds, so nobody would see the run.
  std::atomic<bool> ended{false}, idle{false};
  std::thread watchdog([&] {
    while (!ended.load()) {
      if (idle_for() > options_.idle_seconds) {
        idle.store(true);
        stop_.store(true);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  try {
    Observer observer(*this, *r, net);
    const TrainResult result = train(net, source_, options, observer);
    if (result.interrupted) {
      state = "stopped";
      char idle_words[64];
      std::snprintf(idle_words, sizeof idle_words, "no page listened for %g s", options_.idle_seconds);
      message = idle.load() ? idle_words : "by request";
    }
  } catch (const Error& e) {
    state = "failed";
    message = e.what();
  }
  ended.store(true);
  watchdog.join();
  SharedWeights last = capture_weights(net, r->request.spec, "run " + std::to_string(r->id) + " (" + r->request.model + ")");
  nlohmann::json done;
  {
    const std::lock_guard lock(mutex_);
    r->state = state;
    r->message = message;
    if (state != "failed") r->snapshot = std::move(last);
    running_ = false;
    done = {{"type", "run"}, {"run", run_json(*r)}};
  }
  publish(done);
}

void TrainingJob::stop() { stop_.store(true); }

void TrainingJob::touch() { last_seen_.store(now_ms()); }

double TrainingJob::idle_for() const { return static_cast<double>(now_ms() - last_seen_.load()) / 1000.0; }

bool TrainingJob::running() const {
  const std::lock_guard lock(mutex_);
  return running_;
}

void TrainingJob::publish(nlohmann::json event) {
  {
    const std::lock_guard lock(mutex_);
    events_.push_back(event.dump());
  }
  changed_.notify_all();
}

std::vector<std::string> TrainingJob::events(size_t from, std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, wait, [&] { return events_.size() > from; });
  if (events_.size() <= from) return {};
  return {events_.begin() + static_cast<std::ptrdiff_t>(from), events_.end()};
}

nlohmann::json TrainingJob::run_json(const Run& r) const {
  return {{"id", r.id}, {"model", r.request.model}, {"batchnorm", r.request.batchnorm}, {"lr", r.request.lr},
          {"steps", r.request.steps}, {"step", r.step}, {"state", r.state}, {"message", r.message},
          {"has_snapshot", r.snapshot != nullptr}};
}

nlohmann::json TrainingJob::runs() const {
  const std::lock_guard lock(mutex_);
  nlohmann::json all = nlohmann::json::array();
  for (const auto& r : runs_) all.push_back(run_json(*r));
  return all;
}

TrainingJob::Run* TrainingJob::find(int id) {
  if (runs_.empty()) return nullptr;
  if (id == 0) return runs_.back().get();
  for (auto& r : runs_)
    if (r->id == id) return r.get();
  return nullptr;
}

const TrainingJob::Run* TrainingJob::find(int id) const { return const_cast<TrainingJob*>(this)->find(id); }

SharedWeights TrainingJob::snapshot(int id) const {
  const std::lock_guard lock(mutex_);
  const Run* r = find(id);
  return r ? r->snapshot : nullptr;
}

bool TrainingJob::finished(int id) const {
  const std::lock_guard lock(mutex_);
  const Run* r = find(id);
  return r && r->state != "running";
}

}  // namespace bnlab::serve
