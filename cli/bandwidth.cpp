#include "bandwidth.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace musespark::cli {
namespace {

// Sums a range with independent accumulators so the loop is load-bound.
uint64_t sum_range(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

double measure_read_bandwidth(int threads) {
  threads = std::max(threads, 1);
  const size_t bytes = size_t(1) << 30;  // 1 GiB: far beyond any cache
  const size_t words = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(words);
  // Touch every page (in parallel, so first-touch places pages near readers).
  {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t begin = words * t / threads, end = words * (t + 1) / threads;
        for (size_t i = begin; i < end; ++i) buffer[i] = i;
      });
    for (auto& th : pool) th.join();
  }
  double best = 0;
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < 4; ++pass) {
    std::vector<uint64_t> sums(threads);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t begin = words * t / threads, end = words * (t + 1) / threads;
        sums[t] = sum_range(buffer.data() + begin, end - begin);
      });
    for (auto& th : pool) th.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto v : sums) sink = sink + v;
    best = std::max(best, bytes / s);
  }
  (void)sink;
  return best;
}

}  // namespace musespark::cli
