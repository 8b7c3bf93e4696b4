// musespark serve — how many requests run at once, and how many may wait.
//
// At most `parallel` requests hold a slot (each runs Engine::ask on the one
// shared Engine); up to `max_queue` more wait for one, first come first
// served; a request beyond that is refused at once (503). A waiting request
// gives up when its client has gone or its deadline passes.
//
// Thread-safe: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace musespark::serve {

class Admission {
 public:
  using Clock = std::chrono::steady_clock;

  Admission(int32_t parallel, int32_t max_queue);

  // A running request's hold on a slot; destroying it frees the slot.
  class Slot {
   public:
    explicit Slot(Admission& owner) : owner_(owner) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();

   private:
    Admission& owner_;
  };

  // Takes a slot, waiting in line if none is free. Throws ApiError 503
  // (code "queue_full") when max_queue requests already wait, and 503
  // ("queue_timeout") when `deadline` passes first. Returns nullptr when
  // `abandoned` (asked every `poll`) says the client has gone.
  std::unique_ptr<Slot> acquire(Clock::time_point deadline, const std::function<bool()>& abandoned,
                                Clock::duration poll = std::chrono::milliseconds(100));

  struct Counts {
    int32_t running = 0;
    int32_t queued = 0;
    int64_t rejected = 0;   // refused: the queue was full
  };
  Counts counts() const;
  int32_t parallel() const noexcept { return parallel_; }
  int32_t max_queue() const noexcept { return max_queue_; }

 private:
  void release();

  const int32_t parallel_, max_queue_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int32_t running_ = 0;
  std::deque<uint64_t> waiting_;  // tickets, in arrival order
  uint64_t next_ticket_ = 0;
  int64_t rejected_ = 0;
};

}  // namespace musespark::serve
