// bnlab serve: a local web page to watch batch normalization at work (tools/bnlab/serve/ is the
// server, web/ the page). It binds to 127.0.0.1 unless --host says otherwise, prints its address,
// and runs until Ctrl-C (or SIGTERM), which stops a training run, closes the event streams and
// exits 0.
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "commands.h"
#include "flag_checks.h"
#include "serve/routes.h"
#include "stop_signal.h"

namespace bnlab::cli {
namespace {

struct ServeFlags {
  std::string weights, model = "seed", data = "mnist";
  serve::ServerOptions server;
  double idle_seconds = 10;
  int threads = 0;
};

void run_serve(const ServeFlags& f) {
  const StopOnSignal stop;  // first: every thread after it (the server's, OpenMP's) blocks the signals
  set_threads(f.threads);
  const DataSource data = load_data(f.data);
  if (data.test.height != 28 || data.test.width != 28) fail("--data", f.data, "serve draws 28x28 digits; these images are not 28x28");
  serve::Session session(data, threads());
  if (!f.weights.empty()) {
    const NetworkSpec spec = load_spec(f.model);
    Network net = build_network(spec, {1, 28, 28});
    require_log_probabilities(net);
    // The page feeds standardized pixels, as its own training runs use.
    if (trained_input_scale(load_checkpoint(net, f.weights), f.weights, "") != InputScale::Standardize) {
      fail("--weights", f.weights, "trained with another --input-scale than standardize, which the page feeds");
    }
    session.serve(serve::capture_weights(net, spec_text(spec), f.model + ", " + f.weights));
  }
  serve::TrainingJob job(data, {.threads = threads(), .idle_seconds = f.idle_seconds});
  serve::WebServer server(session, job, f.server);
  const int port = server.bind();
  const std::string host = f.server.host.find(':') != std::string::npos ? "[" + f.server.host + "]" : f.server.host;
  std::printf("bnlab serve: http://%s:%d/ (%s; Ctrl-C stops)\n", host.c_str(), port,
              f.weights.empty() ? "no model yet: the page trains one" : (f.model + ", " + f.weights).c_str());
  std::fflush(stdout);

  std::atomic<bool> ended{false};
  std::thread listener([&] {
    server.run();
    ended.store(true);
  });
  while (!stop.requested()->load() && !ended.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  job.stop();
  server.stop();
  listener.join();
  std::printf("bnlab serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a local web page: draw a digit, look inside each BN layer, train live");
  cmd->add_option("--weights", flags->weights, "safetensors checkpoint to serve (without it the page offers to train one)");
  cmd->add_option("--model", flags->model, "Preset or spec file the weights belong to")->capture_default_str();
  cmd->add_option("--data", flags->data, "mnist, fashion-mnist, or a directory of IDX files (28x28): training and batch-mates")->capture_default_str();
  cmd->add_option("--host", flags->server.host, "Address to listen on (only requests naming it are answered)")->capture_default_str();
  cmd->add_option("--port", flags->server.port, "Port (0: a free one, printed)")->capture_default_str()->check(integer_in(0, 65535, "0 to 65535"));
  cmd->add_option("--save-dir", flags->server.save_dir, "Where the page's Save button writes run-<id>.safetensors and .spec")->capture_default_str();
  cmd->add_option("--idle-stop", flags->idle_seconds, "Stop a training run when no page has listened for this many seconds")
      ->capture_default_str()->check(real_in(0.1, 86400, "0.1 to 86400"));
  cmd->add_option("--threads", flags->threads, "Threads (default: all cores)")->check(threads_range());
  cmd->callback([flags] { run_serve(*flags); });
}

}  // namespace bnlab::cli
