// musespark serve — has the client gone? (Linux)
//
// cpp-httplib 0.11 (Debian 12) tells a handler neither its socket nor whether
// the client is still there, and a write to a closed connection may succeed
// once before it fails. So the watch finds the connection's socket among the
// process's descriptors by its two addresses (/proc/self/fd, once), then asks
// the kernel whether the peer has closed or reset it (poll POLLRDHUP, which
// reads nothing and so leaves the connection to httplib).
#pragma once

#include <chrono>
#include <string>

namespace musespark::serve {

class PeerWatch {
 public:
  // The connection from remote_addr:remote_port to local_port (as httplib's
  // Request gives them). If its socket cannot be found, gone() is always false.
  PeerWatch(const std::string& remote_addr, int remote_port, int local_port);

  // True once the client has closed or reset the connection. Cheap: asks the
  // kernel at most every `every` and remembers the answer in between.
  bool gone(std::chrono::milliseconds every = std::chrono::milliseconds(50));

  bool watching() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
  bool gone_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace musespark::serve
