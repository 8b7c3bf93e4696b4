// musespark serve --model DIR [--host 127.0.0.1] [--port 8080] [--parallel N] [--max-queue N] ...
//
// An OpenAI-compatible HTTP server over one Engine, and the trace viewer at /
// (cli/serve/, docs/server.md). Prints "listening on http://HOST:PORT/" on
// stdout once it accepts connections; stops on SIGINT or SIGTERM.
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands.hpp"
#include "common.hpp"
#include "model_args.hpp"
#include "musespark/engine.hpp"
#include "serve/server.hpp"

namespace musespark::cli {
namespace {

struct ServeArgs {
  ModelArgs model;
  serve::ServerOptions server;
  int64_t max_body_mb = 32;
  int64_t timeout_s = 600;
  double header_timeout_s = 10, read_timeout_s = 30, write_timeout_s = 30, keep_alive_s = 5;
  bool quiet = false;
};

void run(ServeArgs& a) {
  // SIGINT/SIGTERM go to one thread, which stops the server; every other
  // thread (made after this) has them blocked. A client gone mid-write must
  // not kill the process either.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // One thread per connection would give glibc an allocation arena per busy
  // thread, each keeping what it freed: under load the server's memory grew
  // without end (348 -> 587 MiB over 4,000 requests, benchmarks/serve_soak.sh)
  // though nothing leaked. Two arenas keep it flat; MALLOC_ARENA_MAX overrides.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);

  EngineOptions options;
  options.model = a.model.options();
  // Requests that run at once share the cores: each gets its part, since
  // OpenMP teams that outnumber the cores wait on each other at every step.
  if (a.model.threads == 0)
    options.model.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / a.server.parallel);
  Engine engine = Engine::load(a.model.model_dir, options);
  a.server.max_body_bytes = static_cast<size_t>(a.max_body_mb) << 20;
  a.server.request_timeout_ms = a.timeout_s * 1000;
  a.server.log_requests = !a.quiet;
  auto ms = [](double seconds) { return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)); };
  auto& c = a.server.connections;
  c.header_timeout = ms(a.header_timeout_s);
  c.body_timeout = c.idle_timeout = ms(a.read_timeout_s);
  c.write_timeout = ms(a.write_timeout_s);
  c.keep_alive_timeout = ms(a.keep_alive_s);
  serve::Server server(engine, a.server);
  const int port = server.bind();
  std::atomic<bool> signalled = false;
  std::thread stopper([&] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    signalled = true;
    server.stop();
  });
  std::printf("musespark serve: %s (%s) on http://%s:%d/ — viewer at /, OpenAI API at /v1\n",
              engine.model_info().directory.string().c_str(), engine.model_info().architecture.c_str(),
              a.server.host.c_str(), port);
  std::printf("listening on http://%s:%d/\n", a.server.host.c_str(), port);
  std::fflush(stdout);
  server.run();
  // run() also returns if listening fails: then wake the signal thread.
  if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "an OpenAI-compatible HTTP server, with the trace viewer at /");
  args->model.add_to(*cmd);
  auto& s = args->server;
  cmd->add_option("--host", s.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "port (0: any free port; the chosen one is printed)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--model-name", s.model_id, "the model's name in the API (default: the folder's name)");
  cmd->add_option("--parallel", s.parallel,
                  "requests running at once (one engine, shared; without --threads each gets cores/N threads)")
      ->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--max-queue", s.max_queue, "requests waiting for a slot; more get 503")
      ->check(CLI::Range(0, 4096))->capture_default_str();
  cmd->add_option("--max-body-mb", args->max_body_mb, "largest request body in MiB; larger gets 413")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--max-images", s.max_images, "images per request")->check(CLI::Range(0, 64))->capture_default_str();
  cmd->add_option("--timeout", args->timeout_s, "seconds a request may take, queue included; agents stop at it")
      ->check(CLI::Range(1, 86400))->capture_default_str();
  cmd->add_option("--max-connections", s.connections.max_connections,
                  "connections served at once; one more is answered 503 too_many_connections")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--header-timeout", args->header_timeout_s, "seconds a client has to send a request's header")
      ->check(CLI::Range(0.05, 3600.0))->capture_default_str();
  cmd->add_option("--read-timeout", args->read_timeout_s,
                  "seconds a client has to send a request's body, and the longest wait for one read")
      ->check(CLI::Range(0.05, 3600.0))->capture_default_str();
  cmd->add_option("--write-timeout", args->write_timeout_s, "seconds a client may take to read what it is sent")
      ->check(CLI::Range(0.05, 3600.0))->capture_default_str();
  cmd->add_option("--keep-alive-timeout", args->keep_alive_s, "seconds an idle kept-alive connection stays open")
      ->check(CLI::Range(0.05, 3600.0))->capture_default_str();
  cmd->add_option("--api-key", s.api_key,
                  "require 'Authorization: Bearer KEY' on /v1/ (default: $MUSESPARK_API_KEY; none: open)")
      ->envname("MUSESPARK_API_KEY");
  cmd->add_flag("--quiet", args->quiet, "no line per request on stderr");
  cmd->callback([args, &exit_code] { exit_code = run_command([&] { run(*args); }); });
}

}  // namespace musespark::cli
