#include "serve/routes.h"

#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <functional>

#include "bnlab/atomic_file.h"
#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/spec.h"
#include "serve/assets.h"
#include "serve/host_guard.h"
#include "serve/json_fields.h"

namespace bnlab::serve {
namespace {

constexpr int64_t kMaxDrawingSide = 1024;
constexpr int64_t kMaxSteps = 100'000;

using JsonHandler = std::function<nlohmann::json(const httplib::Request&, httplib::Response&)>;

void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(), "application/json");
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// A handler's errors as HTTP: its own HttpError, bad input (Error) 400, anything else 500.
httplib::Server::Handler json_route(JsonHandler handler) {
  return [handler](const httplib::Request& req, httplib::Response& res) {
    try {
      res.status = 200;
      const nlohmann::json out = handler(req, res);
      send_json(res, res.status, out);
    } catch (const HttpError& e) {
      send_json(res, e.status, {{"error", one_line(e.message)}});
    } catch (const Error& e) {
      send_json(res, 400, {{"error", one_line(e.what())}});
    } catch (const std::exception& e) {
      send_json(res, 500, {{"error", one_line(std::string("internal error: ") + e.what())}});
    }
  };
}

GrayImage drawing(const nlohmann::json& body) {
  GrayImage image;
  image.width = integer_field(body, "width", 0, 1, kMaxDrawingSide);
  image.height = integer_field(body, "height", 0, 1, kMaxDrawingSide);
  if (!body.contains("pixels") || !body["pixels"].is_array()) throw HttpError{400, "request body: pixels: must be an array of gray values"};
  const nlohmann::json& px = body["pixels"];
  if (static_cast<int64_t>(px.size()) != image.width * image.height) {
    throw HttpError{400, "request body: pixels: " + std::to_string(px.size()) + " values for " + std::to_string(image.width) + "x" +
                             std::to_string(image.height)};
  }
  image.pixels.reserve(px.size());
  for (const nlohmann::json& v : px) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 255) throw HttpError{400, "request body: pixels: each must be an integer 0 to 255"};
    image.pixels.push_back(static_cast<uint8_t>(v.get<int64_t>()));
  }
  return image;
}

int run_id(const httplib::Request& req) {
  const std::string& s = req.matches[1];
  if (s.size() > 9) throw HttpError{404, "no run " + s};
  return std::stoi(s);
}

// The first of dir/run-<id>.safetensors, run-<id>-2.safetensors, ... that does not exist.
std::string free_path(const std::string& dir, int id) {
  std::string name = "run-";
  name += std::to_string(id);
  const std::filesystem::path base = std::filesystem::path(dir) / name;
  for (int k = 1;; ++k) {
    std::filesystem::path stem = base;
    if (k > 1) stem += std::string(1, '-') += std::to_string(k);
    if (!std::filesystem::exists(std::filesystem::path(stem) += ".safetensors")) return stem.string();
  }
}

}  // namespace

struct WebServer::Impl {
  Session& session;
  TrainingJob& job;
  ServerOptions options;
  httplib::Server server;
  std::atomic<bool> stopping{false};
  int port = 0;

  Impl(Session& s, TrainingJob& j, const ServerOptions& o) : session(s), job(j), options(o) {}

  SharedWeights model_for(const std::string& source) {
    if (source == "served") {
      SharedWeights w = session.served();
      if (!w) throw HttpError{409, "no model is served yet: train one first"};
      return w;
    }
    if (source != "run") throw HttpError{400, "request body: source: must be \"served\" or \"run\""};
    SharedWeights w = job.snapshot(0);
    if (!w) throw HttpError{409, "no run has weights yet"};
    return w;
  }

  nlohmann::json info() {
    const SharedWeights served = session.served();
    return {{"model", served ? nlohmann::json(served->label) : nlohmann::json()},
            {"presets", preset_names()}, {"batch_mates", kBatchMates}, {"running", job.running()}};
  }

  nlohmann::json look(const httplib::Request& req) {
    const nlohmann::json body = parse_body(req.body);
    const std::string mode = string_field(body, "mode", "eval");
    if (mode != "train" && mode != "eval") throw HttpError{400, "request body: mode: must be \"train\" or \"eval\""};
    const LookRequest look{.drawing = drawing(body), .mode = mode == "train" ? Mode::Train : Mode::Eval,
                           .mates_seed = static_cast<uint64_t>(integer_field(body, "mates", 1, 0, int64_t{1} << 53))};
    const SharedWeights model = model_for(string_field(body, "source", "served"));
    return session.look(*model, look);
  }

  nlohmann::json train(const httplib::Request& req, httplib::Response& res) {
    const nlohmann::json body = parse_body(req.body);
    RunRequest run;
    const std::string spec = string_field(body, "spec", "");
    if (!spec.empty()) {
      run.model = "pasted spec";
      run.spec = spec;
    } else {
      run.model = string_field(body, "preset", "seed");
      run.spec = preset_text(run.model);
      if (run.spec.empty()) throw HttpError{400, "request body: preset: no built-in network '" + run.model + "'"};
    }
    run.batchnorm = bool_field(body, "batchnorm", true);
    run.lr = real_field(body, "lr", 1.0, 1e-6, 100);
    run.steps = integer_field(body, "steps", 100, 1, kMaxSteps);
    int id = 0;
    if (!job.start(run, &id)) throw HttpError{409, "a training run is already going: stop it first"};
    res.status = 202;
    return {{"id", id}};
  }

  nlohmann::json save(int id) {
    if (!job.finished(id)) throw HttpError{409, "run " + std::to_string(id) + " is still training (or does not exist)"};
    const SharedWeights w = job.snapshot(id);
    if (!w) throw HttpError{409, "run " + std::to_string(id) + " has no weights (it failed)"};
    std::filesystem::create_directories(options.save_dir);
    const std::string stem = free_path(options.save_dir, id);
    Network net = build_digit_network(w->spec, w->label);
    restore_weights(net, *w);
    write_file_atomically(stem + ".spec", [&](const ByteSink& sink) {
      sink({reinterpret_cast<const uint8_t*>(w->spec.data()), w->spec.size()});
    });
    save_checkpoint(net, stem + ".safetensors", {{"bnlab.model", stem + ".spec"}});
    return {{"weights", stem + ".safetensors"}, {"spec", stem + ".spec"}};
  }

  nlohmann::json serve_run(int id) {
    if (!job.finished(id)) throw HttpError{409, "run " + std::to_string(id) + " is still training (or does not exist)"};
    const SharedWeights w = job.snapshot(id);
    if (!w) throw HttpError{409, "run " + std::to_string(id) + " has no weights (it failed)"};
    session.serve(w);
    return {{"model", w->label}};
  }

  void events(httplib::Response& res) {
    auto next = std::make_shared<size_t>(0);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, next](size_t, httplib::DataSink& sink) {
      if (stopping.load()) return false;
      job.touch();  // a page is listening
      const std::vector<std::string> events = job.events(*next, std::chrono::milliseconds(500));
      std::string out = events.empty() ? ": keep-alive\n\n" : "";
      for (const std::string& e : events) out += "data: " + e + "\n\n";
      *next += events.size();
      return sink.write(out.data(), out.size());
    });
  }

  void routes() {
    const HostGuard guard(options.host, port);
    server.set_pre_routing_handler([this, guard](const httplib::Request& req, httplib::Response& res) {
      if (!guard.allows_host(req.get_header_value("Host")) || !guard.allows_origin(req.get_header_value("Origin"))) {
        send_json(res, 403, {{"error", "Host or Origin is not this server (" + options.host + ":" + std::to_string(port) + ")"}});
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.path.starts_with("/api/")) job.touch();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const std::string what = res.status == 404 ? "no such path: " + req.path
                             : res.status == 413 ? "request body larger than " + std::to_string(kMaxBody) + " bytes"
                                                 : "HTTP error " + std::to_string(res.status);
      send_json(res, res.status, {{"error", one_line(what)}});
      return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_payload_max_length(kMaxBody);
    server.Get("/api/info", json_route([this](auto&, auto&) { return info(); }));
    server.Post("/api/look", json_route([this](auto& req, auto&) { return look(req); }));
    server.Post("/api/train", json_route([this](auto& req, auto& res) { return train(req, res); }));
    server.Post("/api/train/stop", json_route([this](auto&, auto&) {
      job.stop();
      return nlohmann::json{{"stopping", job.running()}};
    }));
    server.Get("/api/runs", json_route([this](auto&, auto&) { return job.runs(); }));
    server.Post(R"(/api/runs/(\d+)/save)", json_route([this](auto& req, auto&) { return save(run_id(req)); }));
    server.Post(R"(/api/runs/(\d+)/serve)", json_route([this](auto& req, auto&) { return serve_run(run_id(req)); }));
    server.Get("/api/events", [this](const httplib::Request&, httplib::Response& res) { events(res); });
    server.Get(R"(/[a-z._-]*)", [](const httplib::Request& req, httplib::Response& res) {
      const EmbeddedAsset* asset = find_asset(req.path);
      if (!asset) {
        res.status = 404;
        return;
      }
      res.set_content(asset->data, asset->size, content_type(req.path));
    });
  }
};

WebServer::WebServer(Session& session, TrainingJob& job, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(session, job, options)) {}

WebServer::~WebServer() = default;

int WebServer::bind() {
  const ServerOptions& o = impl_->options;
  // SO_REUSEADDR alone: httplib's default adds SO_REUSEPORT, which lets a second server share a
  // port that is in use instead of failing.
  impl_->server.set_socket_options([](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const int port = o.port == 0 ? impl_->server.bind_to_any_port(o.host) : (impl_->server.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0) {
    fail("--port", std::to_string(o.port), "cannot listen on " + o.host + ":" + std::to_string(o.port) + " (in use, or not an address of this machine)");
  }
  impl_->port = port;
  impl_->routes();
  return port;
}

void WebServer::run() { impl_->server.listen_after_bind(); }

void WebServer::stop() {
  impl_->stopping.store(true);
  impl_->server.stop();
}

}  // namespace bnlab::serve
