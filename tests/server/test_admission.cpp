// musespark serve: slots for running requests, and the bounded queue.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "serve/admission.hpp"
#include "serve/api_error.hpp"

using namespace musespark::serve;
using namespace std::chrono_literals;

namespace {
auto later(std::chrono::milliseconds ms = 10s) { return Admission::Clock::now() + ms; }
}  // namespace

TEST_CASE("serve: admission runs `parallel` requests, queues the next in order, refuses the rest") {
  Admission a(2, 2);
  auto s1 = a.acquire(later(), {});
  auto s2 = a.acquire(later(), {});
  REQUIRE(s1);
  REQUIRE(s2);
  CHECK(a.counts().running == 2);

  std::vector<int> order;
  std::mutex order_mutex;
  auto waiter = [&](int id) {
    auto slot = a.acquire(later(), {});
    std::lock_guard lock(order_mutex);
    order.push_back(id);
  };
  std::thread w1(waiter, 1);
  while (a.counts().queued < 1) std::this_thread::sleep_for(1ms);
  std::thread w2(waiter, 2);
  while (a.counts().queued < 2) std::this_thread::sleep_for(1ms);

  try {
    a.acquire(later(), {});
    FAIL("a third waiter was queued");
  } catch (const ApiError& e) {
    CHECK(e.status() == 503);
    CHECK(e.code() == "queue_full");
  }
  CHECK(a.counts().rejected == 1);

  // One slot at a time, so the order of the waiters' records is the order
  // they were admitted in: w1 gets s1's slot, and w2 only the slot w1 frees.
  s1.reset();
  w1.join();
  w2.join();
  CHECK(order == std::vector<int>{1, 2});  // first come, first served
  s2.reset();
  CHECK(a.counts().running == 0);
  CHECK(a.counts().queued == 0);
}

TEST_CASE("serve: a waiting request leaves the queue when its client goes or its time is up") {
  Admission a(1, 4);
  auto held = a.acquire(later(), {});
  std::atomic<bool> gone = false;
  std::unique_ptr<Admission::Slot> got;
  std::thread t([&] { got = a.acquire(later(), [&] { return gone.load(); }, 5ms); });
  while (a.counts().queued < 1) std::this_thread::sleep_for(1ms);
  gone = true;
  t.join();
  CHECK(got == nullptr);
  CHECK(a.counts().queued == 0);

  try {
    a.acquire(later(30ms), {});
    FAIL("waited past the deadline");
  } catch (const ApiError& e) {
    CHECK(e.status() == 503);
    CHECK(e.code() == "queue_timeout");
  }
  CHECK(a.counts().queued == 0);
  held.reset();
  CHECK(a.acquire(later(), {}) != nullptr);
}
