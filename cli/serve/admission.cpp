#include "serve/admission.hpp"

#include <algorithm>

#include "serve/api_error.hpp"

namespace musespark::serve {

Admission::Admission(int32_t parallel, int32_t max_queue)
    : parallel_(std::max(1, parallel)), max_queue_(std::max(0, max_queue)) {}

Admission::Slot::~Slot() { owner_.release(); }

void Admission::release() {
  {
    std::lock_guard lock(mutex_);
    --running_;
  }
  changed_.notify_all();
}

std::unique_ptr<Admission::Slot> Admission::acquire(Clock::time_point deadline, const std::function<bool()>& abandoned,
                                                    Clock::duration poll) {
  std::unique_lock lock(mutex_);
  if (waiting_.empty() && running_ < parallel_) {
    ++running_;
    return std::make_unique<Slot>(*this);
  }
  if (static_cast<int32_t>(waiting_.size()) >= max_queue_) {
    ++rejected_;
    throw ApiError(503, "server_error", "queue_full", "",
                   "the server is busy: every slot is taken and the queue is full; try again later");
  }
  const uint64_t ticket = next_ticket_++;
  waiting_.push_back(ticket);
  auto leave = [&] {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), ticket));
    changed_.notify_all();  // the next in line may go now
  };
  while (!(waiting_.front() == ticket && running_ < parallel_)) {
    if (Clock::now() >= deadline) {
      leave();
      throw ApiError(503, "server_error", "queue_timeout", "",
                     "the server is busy: the request's time ran out while it waited in the queue");
    }
    changed_.wait_until(lock, std::min(deadline, Clock::now() + poll));
    if (abandoned && abandoned()) {
      leave();
      return nullptr;
    }
  }
  waiting_.pop_front();
  ++running_;
  changed_.notify_all();
  return std::make_unique<Slot>(*this);
}

Admission::Counts Admission::counts() const {
  std::lock_guard lock(mutex_);
  return {running_, static_cast<int32_t>(waiting_.size()), rejected_};
}

}  // namespace musespark::serve
