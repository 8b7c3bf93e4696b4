#include "serve/server.hpp"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "musespark/error.hpp"
#include "serve/admission.hpp"
#include "serve/api_error.hpp"
#include "serve/chat_reply.hpp"
#include "serve/chat_request.hpp"
#include "serve/connections.hpp"
#include "serve/event_json.hpp"
#include "serve/peer.hpp"
#include "serve/sse.hpp"
#include "serve/viewer_files.hpp"

namespace musespark::serve {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::string content_type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) { return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  // A 503 (queue full or timed out, out of memory) is worth trying again:
  // say when, so that clients and proxies back off instead of hammering.
  if (e.status() == 503) res.set_header("Retry-After", "1");
  res.set_content(e.body(), "application/json");
}

ApiError request_too_large() {
  return ApiError(413, "invalid_request_error", "request_too_large", "", "the request body is larger than this server accepts");
}

// The whole body (httplib enforces the payload limit while reading: 413).
std::string read_body(httplib::Response& res, const httplib::ContentReader& read) {
  std::string body;
  if (!read([&](const char* data, size_t size) {
        body.append(data, size);
        return true;
      })) {
    if (res.status == 413) throw request_too_large();
    throw ApiError::invalid("", "the request body could not be read", "invalid_body");
  }
  return body;
}

// A request in flight: what the streaming provider needs after the handler returned.
struct Call {
  ChatRequest chat;
  ResponseInfo info;
  uint64_t seed = 0;
  Clock::time_point deadline;
  std::shared_ptr<PeerWatch> watch;
  std::unique_ptr<Admission::Slot> slot;
};

}  // namespace

struct Server::Impl {
  const Engine& engine;
  ServerOptions options;
  std::string model_id;
  int64_t started_unix = std::time(nullptr);
  Admission admission;
  ConnectionServer http;
  // Completion requests (the two POST routes): each received one ends as
  // exactly one of served (answered in full), rejected (refused with a 4xx,
  // or a 503 for a full queue or its wait timing out), cancelled (its client
  // left, or the server stopped) or failed (a server error).
  std::atomic<int64_t> received{0}, served{0}, rejected{0}, cancelled{0}, failed{0};
  std::atomic<bool> stopping{false};  // stop(): running requests are cancelled, waiting ones leave
  std::mutex random_mutex;
  std::mt19937_64 random{std::random_device{}()};

  Impl(const Engine& e, ServerOptions o)
      : engine(e), options(std::move(o)), admission(options.parallel, options.max_queue), http(options.connections) {
    model_id = options.model_id;
    if (model_id.empty()) {
      auto dir = engine.model_info().directory;
      model_id = (dir.has_filename() ? dir.filename() : dir.parent_path().filename()).string();
    }
    if (model_id.empty()) model_id = "musespark";
  }

  uint64_t random_u64() {
    std::lock_guard lock(random_mutex);
    return random();
  }

  Json model_object() const {
    const ModelInfo& m = engine.model_info();
    return Json{{"id", model_id},
                {"object", "model"},
                {"created", started_unix},
                {"owned_by", "musespark"},
                {"musespark",
                 {{"architecture", m.architecture},
                  {"vision", m.vision},
                  {"max_context", m.max_context},
                  {"parameters", m.parameter_count}}}};
  }

  // Parses a body, checks the model and the request, and waits for a slot. nullptr: the
  // client left while waiting.
  std::unique_ptr<Call> admit(const httplib::Request& req, const std::string& body, bool one_choice = false) {
    auto call = std::make_unique<Call>();
    RequestLimits limits;
    limits.max_images = options.max_images;
    call->chat = parse_chat_request(body, limits);
    if (one_choice && call->chat.n != 1) throw ApiError::invalid("n", "n: this endpoint answers one choice");
    if (!call->chat.model.empty() && call->chat.model != model_id)
      throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                     fmt::format("The model '{}' does not exist: this server serves '{}'", call->chat.model, model_id));
    if (!engine.model_info().vision)
      for (size_t i = 0; i < call->chat.request.messages.size(); ++i)
        for (size_t j = 0; j < call->chat.request.messages[i].parts.size(); ++j)
          if (call->chat.request.messages[i].parts[j].kind == Part::Kind::image)
            throw ApiError::invalid(fmt::format("messages[{}].content[{}]", i, j),
                                    fmt::format("the model '{}' has no vision encoder: it cannot see images", model_id),
                                    "unsupported_value");
    // What the engine would refuse (a prompt past the context, ...) is
    // refused now, before a slot is taken or a stream's headers are sent.
    engine.check(call->chat.request);
    call->info = {fmt::format("chatcmpl-{:016x}{:08x}", random_u64(), static_cast<uint32_t>(random_u64())),
                  static_cast<int64_t>(std::time(nullptr)), model_id};
    call->seed = call->chat.seed ? *call->chat.seed : random_u64();
    call->deadline = Clock::now() + std::chrono::milliseconds(options.request_timeout_ms);
    call->watch = std::make_shared<PeerWatch>(req.remote_addr, req.remote_port, req.local_port);
    call->slot = admission.acquire(call->deadline, [this, w = call->watch] { return stopping || w->gone(); });
    if (!call->slot) {
      ++cancelled;
      return nullptr;
    }
    return call;
  }

  // One choice: a run of the engine. `send` gets the message's new text as it
  // comes and returns false when the client cannot take it. nullopt: the
  // client has gone, and the run was cancelled.
  // The engine's request for choice `index`: its seed, and what is left of
  // the request's time as its deadline (or the client's own, if sooner).
  static Request engine_request(const Call& call, int32_t index) {
    Request r = call.chat.request;
    r.seed = choice_seed(call.seed, index);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(call.deadline - Clock::now()).count();
    r.budgets.deadline_ms = std::max<int64_t>(1, r.budgets.deadline_ms > 0 ? std::min(r.budgets.deadline_ms, left) : left);
    return r;
  }

  // The API error for the exception being handled. With `count`, it is the
  // end of a completion request: refusals count as rejected, server errors
  // as failed.
  ApiError current_error(bool count = true) {
    ApiError e = to_api_error(std::current_exception());
    if (count) {
      const bool refusal = e.status() < 500 || e.code() == "queue_full" || e.code() == "queue_timeout";
      ++(refusal ? rejected : failed);
    }
    return e;
  }

  // Throws 401 unless the request carries the API key (when one is set).
  void authorize(const httplib::Request& req) const {
    if (options.api_key.empty()) return;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view bearer = "Bearer ";
    const std::string_view given = header.compare(0, bearer.size(), bearer) == 0
                                       ? std::string_view(header).substr(bearer.size()) : std::string_view();
    if (!constant_time_equal(given, options.api_key))
      throw ApiError(401, "invalid_request_error", "invalid_api_key", "",
                     header.empty() ? "You didn't provide an API key: send it as 'Authorization: Bearer KEY'"
                                    : "Incorrect API key provided");
  }

  // Whether a == b, in a time that depends only on their lengths.
  static bool constant_time_equal(std::string_view a, std::string_view b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    const size_t n = std::max(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
      const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
      const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
      diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
  }

  std::optional<ChoiceOutcome> run_choice(const Call& call, int32_t index, const std::function<bool(const Delta&)>& send) {
    const Request r = engine_request(call, index);
    ReplyBuilder reply(r.mode, call.chat.stop);
    bool gone = false;
    Result result = engine.ask(r, [&](const Event& e) {
      Delta d;
      const bool go_on = reply.on_event(e, d);
      if (!gone && !d.empty() && !send(d)) gone = true;
      if (stopping || call.watch->gone()) gone = true;
      return go_on && !gone;
    });
    if (gone) return std::nullopt;
    return ChoiceOutcome{reply.reasoning(), reply.content(), reply.finish_reason(result.trace),
                         reply.content_tokens(result.trace), std::move(result.trace)};
  }

  void chat_completions(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    std::shared_ptr<Call> call = admit(req, body);
    if (!call) return;
    if (!call->chat.stream) {
      std::vector<ChoiceOutcome> choices;
      for (int32_t i = 0; i < call->chat.n; ++i) {
        auto choice = run_choice(*call, i, [](const Delta&) { return true; });
        if (!choice) {
          ++cancelled;
          return;
        }
        choices.push_back(std::move(*choice));
      }
      call->slot.reset();
      ++served;
      res.set_content(completion_json(call->info, choices, call->chat.trace), "application/json");
      return;
    }
    start_stream(res, [this, call](httplib::DataSink& sink) { return stream_chat(*call, sink); }, call);
  }

  // How a stream ended: answered, its client gone, or an error sent in the
  // stream (already counted by current_error).
  enum class StreamEnd { served, gone, error_sent };

  // The response becomes an event stream written by `body`.
  void start_stream(httplib::Response& res, std::function<StreamEnd(httplib::DataSink&)> body, std::shared_ptr<Call> call) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider("text/event-stream", [this, body = std::move(body), call](size_t, httplib::DataSink& sink) {
      StreamEnd end = StreamEnd::gone;
      bool counted = false;
      try {
        end = body(sink);
      } catch (...) {
        ++failed;  // a bug in this file: the bodies catch what the engine throws
        counted = true;
      }
      call->slot.reset();
      if (end == StreamEnd::gone) {
        if (!counted) ++cancelled;
        return false;
      }
      if (end == StreamEnd::served) ++served;
      sink.done();
      return true;
    });
  }

  StreamEnd stream_chat(const Call& call, httplib::DataSink& sink) {
    auto write = [&](const std::string& data) { return sink.write(data.data(), data.size()); };
    const bool usage_field = call.chat.include_usage;
    std::vector<ChoiceOutcome> choices;
    try {
      for (int32_t i = 0; i < call.chat.n; ++i) {
        if (!write(sse_event(role_chunk_json(call.info, i, usage_field)))) return StreamEnd::gone;
        auto choice = run_choice(call, i, [&](const Delta& d) {
          return write(sse_event(delta_chunk_json(call.info, i, d, usage_field)));
        });
        if (!choice) return StreamEnd::gone;
        if (!write(sse_event(finish_chunk_json(call.info, i, choice->finish_reason,
                                               call.chat.trace ? &choice->trace : nullptr, usage_field))))
          return StreamEnd::gone;
        choices.push_back(std::move(*choice));
      }
      if (usage_field && !write(sse_event(usage_chunk_json(call.info, choices)))) return StreamEnd::gone;
    } catch (...) {
      // Headers are out: the error goes in the stream, as OpenAI sends it.
      const std::string error = current_error().body();
      write(sse_event(error)) && write(std::string(kSseDone));
      return StreamEnd::error_sent;
    }
    return write(std::string(kSseDone)) ? StreamEnd::served : StreamEnd::gone;
  }

  void ask_events(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    std::shared_ptr<Call> call = admit(req, body, true);
    if (!call) return;
    start_stream(res, [this, call](httplib::DataSink& sink) {
      auto write = [&](const std::string& data) { return sink.write(data.data(), data.size()); };
      const Request r = engine_request(*call, 0);
      bool gone = false;
      try {
        engine.ask(r, [&](const Event& e) {
          if (!gone && !write(sse_event(event_json(e)))) gone = true;
          if (stopping || call->watch->gone()) gone = true;
          return !gone;
        });
      } catch (...) {
        Json error = Json::parse(current_error().body());
        write(sse_event(Json{{"type", "error"}, {"error", error["error"]}}.dump(-1, ' ', false, Json::error_handler_t::replace))) &&
            write(std::string(kSseDone));
        return StreamEnd::error_sent;
      }
      return !gone && write(std::string(kSseDone)) ? StreamEnd::served : StreamEnd::gone;
    }, call);
  }

  static bool is_completion(const httplib::Request& req) {
    return req.method == "POST" && (req.path == "/v1/chat/completions" || req.path == "/v1/musespark/ask");
  }

  // A completion route's handler: counts the request, reads its body, checks
  // the key, then answers with `answer`. Bodies are read here rather than by
  // httplib, which would refuse a form-encoded body over 8 KiB (curl -d sends
  // JSON labelled so) and parse it as a form. The body is read before the key
  // is checked, so that a refused request leaves nothing unread on a
  // kept-alive connection.
  auto completion_route(void (Impl::*answer)(const httplib::Request&, const std::string&, httplib::Response&)) {
    return [this, answer](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
      ++received;
      const std::string body = read_body(res, read);
      authorize(req);
      (this->*answer)(req, body, res);
    };
  }

  void routes() {
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const auto c = admission.counts();
      const auto k = http.counts();
      Json j{{"status", "ok"},         {"model", model_id},           {"parallel", admission.parallel()},
             {"max_queue", admission.max_queue()}, {"running", c.running}, {"queued", c.queued},
             {"received", received.load()}, {"served", served.load()}, {"rejected", rejected.load()},
             {"cancelled", cancelled.load()}, {"failed", failed.load()},
             {"connections", {{"open", k.open}, {"max", http.limits().max_connections},
                              {"refused", k.refused}, {"timed_out", k.timed_out}}}};
      res.set_content(j.dump(), "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      authorize(req);
      res.set_content(Json{{"object", "list"}, {"data", Json::array({model_object()})}}.dump(), "application/json");
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      authorize(req);
      if (req.matches[1] != model_id)
        throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                       fmt::format("The model '{}' does not exist: this server serves '{}'", req.matches[1].str(), model_id));
      res.set_content(model_object().dump(), "application/json");
    });
    http.Post("/v1/chat/completions", completion_route(&Impl::chat_completions));
    http.Post("/v1/musespark/ask", completion_route(&Impl::ask_events));
    http.Get(R"(/([A-Za-z0-9_.-]*))", [](const httplib::Request& req, httplib::Response& res) {
      const std::string name = req.matches[1].str().empty() ? "index.html" : req.matches[1].str();
      for (const ViewerFile& f : viewer_files())
        if (f.name == name) {
          res.set_header("Cache-Control", "no-cache");
          res.set_content(std::string(f.bytes), content_type_of(name));
          return;
        }
      res.status = 404;
    });
    http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
      try {
        std::rethrow_exception(error);
      } catch (...) {
        send_error(res, current_error(is_completion(req)));
      }
    });
    // Statuses httplib sets itself (no route, body too large, unreadable request) get OpenAI's error body too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      if (res.status == 404)
        send_error(res, ApiError(404, "invalid_request_error", "not_found", "",
                                 fmt::format("no such route: {} {}", req.method, req.path)));
      else if (res.status == 413)
        send_error(res, request_too_large());
      else if (res.status < 500)
        send_error(res, ApiError(res.status, "invalid_request_error", "", "", fmt::format("bad request (HTTP {})", res.status)));
      else
        send_error(res, ApiError(res.status, "server_error", "", "", fmt::format("server error (HTTP {})", res.status)));
      return httplib::Server::HandlerResponse::Handled;
    }));
    if (options.log_requests)
      http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
      });
  }
};

Server::Server(const Engine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {
  Impl& s = *impl_;
  s.http.set_payload_max_length(s.options.max_body_bytes);
  s.routes();
}

Server::~Server() = default;

int Server::bind() {
  Impl& s = *impl_;
  const int port = s.options.port == 0 ? s.http.bind_to_any_port(s.options.host)
                                       : (s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (port < 0)
    throw Error(ErrorKind::io, "", "--port",
                fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", s.options.host,
                            s.options.port));
  return port;
}

void Server::run() { impl_->http.listen_after_bind(); }

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace musespark::serve
