// musespark serve — the HTTP server: OpenAI's Chat Completions API over one
// Engine, the engine's events as a stream, and the trace viewer.
//
//   GET  /                        the trace viewer (web/viewer/)
//   GET  /health                  status and counts: received = served + rejected + cancelled + failed
//   GET  /v1/models[/ID]          the one model served
//   POST /v1/chat/completions     OpenAI Chat Completions (stream or not)
//   POST /v1/musespark/ask        the same request, answered as a stream of engine events
//
// docs/server.md has every field. Errors are OpenAI error objects with their
// HTTP status; no request can crash the server.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "musespark/engine.hpp"

namespace musespark::serve {

// How many connections may be open, and how long a client may take to send a
// request or read a response (serve/connections.hpp enforces them).
struct ConnectionLimits {
  int32_t max_connections = 64;
  std::chrono::milliseconds header_timeout{10'000};      // a request's header must arrive whole by then
  std::chrono::milliseconds body_timeout{30'000};        // its body, from the header's end
  std::chrono::milliseconds idle_timeout{30'000};        // the longest wait for any one read
  std::chrono::milliseconds keep_alive_timeout{5'000};   // for the next request on an open connection
  std::chrono::milliseconds write_timeout{30'000};       // a client that reads nothing this long is dropped
  int32_t max_requests_per_connection = 100;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: any free port (bind() says which)
  std::string model_id;                   // the name clients use; "": the model folder's name
  int32_t parallel = 1;                   // requests running at once
  int32_t max_queue = 16;                 // requests waiting for a slot; more get 503
  size_t max_body_bytes = 32u << 20;      // larger bodies get 413
  int32_t max_images = 8;                 // per request
  ConnectionLimits connections;           // open connections, header/body/idle/write timeouts
  int64_t request_timeout_ms = 600'000;   // queue wait + run; agents stop at it (reason "deadline")
  bool log_requests = true;               // one line per request on stderr
  // When set, every /v1/ route needs "Authorization: Bearer <api_key>"
  // (compared in constant time); others get 401 "invalid_api_key". The
  // viewer's files and /health stay open.
  std::string api_key;
};

class Server {
 public:
  // `engine` must outlive the server; it is shared by every request.
  Server(const Engine& engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the address; returns the port. Throws Error{io} when it cannot.
  int bind();
  // Serves until stop() is called (from another thread or a signal thread).
  void run();
  // Stops accepting, cancels the requests that run or wait (their clients'
  // connections are closed), and returns run(); thread-safe.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace musespark::serve
