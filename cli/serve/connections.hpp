// musespark serve — connections: how many may be open, and how long a client
// may take to send a request.
//
// cpp-httplib reads each connection on a thread of its pool with a timeout
// per read only, so a client that sends a byte every few seconds, or half a
// header and nothing more, holds a thread for as long as it likes; 50 such
// clients left /health unanswered for over a minute. ConnectionServer owns
// the per-connection loop instead:
//   - a request's header must arrive whole within `header_timeout`, its body
//     within `body_timeout`, and no read waits longer than `idle_timeout`;
//   - a kept-alive connection waits `keep_alive_timeout` for its next request;
//   - at most `max_connections` connections are served at once, each on a
//     thread of its own; one past that is answered 503 "too_many_connections"
//     at once by a separate thread and closed.
// Everything else (parsing, routing, responses) stays httplib's.
//
// Thread-safe as httplib::Server is; counts() may be called from any thread.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>

#include "serve/server.hpp"

namespace musespark::serve {

class ConnectionServer : public httplib::Server {
 public:
  explicit ConnectionServer(const ConnectionLimits& limits);

  struct Counts {
    int32_t open = 0;          // connections being served now
    int64_t refused = 0;       // answered 503 for being one too many
    int64_t timed_out = 0;     // closed for a request that did not arrive in time
  };
  Counts counts() const;
  const ConnectionLimits& limits() const noexcept { return limits_; }

 private:
  bool process_and_close_socket(socket_t sock) override;
  void refuse(socket_t sock);

  ConnectionLimits limits_;
  std::atomic<int32_t> open_{0};
  std::atomic<int64_t> refused_{0}, timed_out_{0};
};

}  // namespace musespark::serve
