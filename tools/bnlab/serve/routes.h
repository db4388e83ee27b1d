// The HTTP side of `bnlab serve`: the page's embedded files and a small JSON API over the
// session (looks at a drawn digit) and the training job (live runs and their event stream).
//
//   GET  /  /app.js  /style.css      the page (web/, embedded)
//   GET  /api/info                   served model, presets, batch size of a look
//   POST /api/look                   {pixels, width, height, mode, mates, source} -> what each layer did
//   POST /api/train                  {preset | spec, batchnorm, lr, steps} -> 202 {id}; 409 while one runs
//   POST /api/train/stop             asks the running run to stop
//   GET  /api/runs                   every run and its state
//   GET  /api/events                 server-sent events: runs starting and ending, their curves' points
//   POST /api/runs/<id>/save         writes its checkpoint and spec under the server's --save-dir
//   POST /api/runs/<id>/serve        makes its weights the served model
//
// Every request must name this server in Host (and, if it sends one, Origin), else 403: a page
// from another site reaching 127.0.0.1 through DNS rebinding names its own host. Bodies over
// kMaxBody bytes get 413, malformed JSON 400, unknown paths 404; errors are {"error": "<one line>"}.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "serve/session.h"
#include "serve/training_job.h"

namespace bnlab::serve {

constexpr size_t kMaxBody = size_t{1} << 20;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string save_dir = "bnlab-runs";
};

class WebServer {
 public:
  WebServer(Session& session, TrainingJob& job, const ServerOptions& options);
  ~WebServer();
  // Binds the socket; returns the port (a free one for port 0). Error if it cannot be bound.
  int bind();
  void run();   // serves until stop(); call bind() first
  void stop();  // from another thread: ends run() after the open requests and event streams

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bnlab::serve
