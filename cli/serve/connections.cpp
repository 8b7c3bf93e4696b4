#include "serve/connections.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "serve/api_error.hpp"

namespace musespark::serve {
namespace {

using Clock = std::chrono::steady_clock;

// Set on the thread that answers connections past the cap.
thread_local bool refusing = false;

// A thread per connection up to `workers`; past that, connections go to one
// thread that refuses them (the task it runs sees `refusing`).
class ConnectionQueue : public httplib::TaskQueue {
 public:
  explicit ConnectionQueue(size_t workers) : workers_(workers) {
    for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
    threads_.emplace_back([this] { refuse(); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      if (busy_ + jobs_.size() < workers_) {
        jobs_.push_back(std::move(fn));
      } else {
        refusals_.push_back(std::move(fn));
      }
    }
    changed_.notify_all();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() { run(jobs_, true); }
  void refuse() {
    refusing = true;
    run(refusals_, false);
  }
  void run(std::deque<std::function<void()>>& queue, bool counts_busy) {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return !queue.empty() || shutdown_; });
        if (queue.empty()) return;  // shut down, nothing left
        fn = std::move(queue.front());
        queue.pop_front();
        if (counts_busy) ++busy_;
      }
      fn();
      if (counts_busy) {
        std::lock_guard lock(mutex_);
        --busy_;
      }
    }
  }

  const size_t workers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_, refusals_;
  size_t busy_ = 0;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

int milliseconds_until(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1'000'000));
}

// Waits until `sock` has `events` or `deadline` passes; true if it has them.
// With `stopped`, gives up within 200 ms of it returning true.
bool wait_for(int sock, short events, Clock::time_point deadline, const std::function<bool()>& stopped = {}) {
  for (;;) {
    int ms = milliseconds_until(deadline);
    if (stopped) {
      if (stopped()) return false;
      ms = std::min(ms, 200);
    }
    pollfd p{sock, events, 0};
    const int n = ::poll(&p, 1, ms);
    if (n > 0) return true;  // ready, or an error/hang-up that the next call reports
    if (n < 0 && errno != EINTR) return false;
    if (n == 0 && Clock::now() >= deadline) return false;
  }
}

void address_of(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if ((peer ? ::getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len)
            : ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len)) != 0)
    return;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  ip = text;
}

// One connection's bytes, with the deadlines of ConnectionLimits. A request
// is in its header until httplib has read the blank line that ends it
// (httplib reads the header a byte at a time, so the bytes it has taken show
// where the header ends), then in its body.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int sock, const ConnectionLimits& limits, std::function<bool()> stopped)
      : sock_(sock), limits_(limits), stopped_(std::move(stopped)) {}

  // A new request starts: its header has until now + header_timeout.
  void begin_request() {
    in_header_ = true;
    tail_ = 0;
    deadline_ = Clock::now() + limits_.header_timeout;
  }
  bool timed_out() const noexcept { return timed_out_; }
  bool has_buffered() const noexcept { return begin_ < end_; }

  bool is_readable() const override { return has_buffered() || wait_for(sock_, POLLIN, read_deadline(), stopped_); }
  bool is_writable() const override { return wait_for(sock_, POLLOUT, Clock::now() + limits_.write_timeout); }

  ssize_t read(char* ptr, size_t size) override {
    if (!has_buffered()) {
      if (!wait_for(sock_, POLLIN, read_deadline(), stopped_)) {
        timed_out_ = true;
        return -1;
      }
      const ssize_t n = ::recv(sock_, buffer_, sizeof buffer_, 0);
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buffer_ + begin_, n);
    begin_ += n;
    if (in_header_) track_header(ptr, n);
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!wait_for(sock_, POLLOUT, Clock::now() + limits_.write_timeout)) return -1;
    return ::send(sock_, ptr, size, MSG_NOSIGNAL);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  Clock::time_point read_deadline() const { return std::min(deadline_, Clock::now() + limits_.idle_timeout); }

  void track_header(const char* p, size_t n) {
    // The last bytes taken, to find "\r\n\r\n" (or "\n\n") across reads.
    for (size_t i = 0; i < n && in_header_; ++i) {
      tail_ = (tail_ << 8) | static_cast<uint8_t>(p[i]);
      if ((tail_ & 0xffffffffu) == 0x0d0a0d0au || (tail_ & 0xffffu) == 0x0a0au) {
        in_header_ = false;
        deadline_ = Clock::now() + limits_.body_timeout;
      }
    }
  }

  int sock_;
  const ConnectionLimits& limits_;
  std::function<bool()> stopped_;
  char buffer_[4096];
  size_t begin_ = 0, end_ = 0;
  bool in_header_ = true;
  uint64_t tail_ = 0;
  Clock::time_point deadline_ = Clock::now();
  bool timed_out_ = false;
};

void close_socket(int sock) {
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

}  // namespace

ConnectionServer::ConnectionServer(const ConnectionLimits& limits) : limits_(limits) {
  const size_t workers = static_cast<size_t>(std::max(1, limits_.max_connections));
  new_task_queue = [workers] { return new ConnectionQueue(workers); };
  // Only for the Keep-Alive header httplib writes; the loop below enforces them.
  set_keep_alive_max_count(static_cast<size_t>(std::max(1, limits_.max_requests_per_connection)));
  set_keep_alive_timeout(std::max<time_t>(1, static_cast<time_t>((limits_.keep_alive_timeout.count() + 999) / 1000)));
}

ConnectionServer::Counts ConnectionServer::counts() const {
  return {open_.load(), refused_.load(), timed_out_.load()};
}

void ConnectionServer::refuse(socket_t sock) {
  ++refused_;
  const std::string body =
      ApiError(503, "server_error", "too_many_connections", "",
               fmt::format("the server has {} connections open, its limit; try again later", limits_.max_connections))
          .body();
  const std::string response = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\n"
      "Connection: close\r\n\r\n{}",
      body.size(), body);
  // Never waits on the client: what the socket buffer takes now is sent.
  ::send(sock, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  close_socket(sock);
}

bool ConnectionServer::process_and_close_socket(socket_t sock) {
  if (refusing) {
    refuse(sock);
    return true;
  }
  ++open_;
  auto stopped = [this] { return svr_sock_ == INVALID_SOCKET; };  // stop() closed the listening socket
  DeadlineStream stream(sock, limits_, stopped);
  bool ok = true;
  for (int32_t count = 0; count < limits_.max_requests_per_connection && ok; ++count) {
    // The first request's header has header_timeout from the connection's
    // start; a kept-alive connection waits keep_alive_timeout for the next
    // request to begin, whose header then has header_timeout.
    if (count == 0) {
      stream.begin_request();
      if (!wait_for(sock, POLLIN, Clock::now() + limits_.header_timeout, stopped)) {
        if (!stopped()) ++timed_out_;
        break;
      }
    } else {
      if (!stream.has_buffered() && !wait_for(sock, POLLIN, Clock::now() + limits_.keep_alive_timeout, stopped))
        break;
      stream.begin_request();
    }
    bool connection_closed = false;
    const bool last = count + 1 == limits_.max_requests_per_connection || stopped();
    ok = process_request(stream, last, connection_closed, nullptr);
    if (stream.timed_out()) {
      ++timed_out_;
      break;
    }
    if (connection_closed) break;
  }
  close_socket(sock);
  --open_;
  return ok;
}

}  // namespace musespark::serve
