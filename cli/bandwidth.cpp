#include "bandwidth.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace musespark::cli {
namespace {

// Sums a range as four streams (its quarters) of 64-byte blocks, read side
// by side as the decode kernels read their weight panels, with independent
// vector accumulators so the loop is bound by memory, not by adds. (Four
// streams read faster here than one or eight.)
uint64_t sum_range(const uint64_t* p, size_t n) {
  using Block = uint64_t __attribute__((vector_size(64)));
  constexpr size_t kStreams = 4, kWords = sizeof(Block) / sizeof(uint64_t);
  const size_t blocks = n / kWords / kStreams;  // per stream
  Block acc[kStreams] = {};
  for (size_t i = 0; i < blocks; ++i)
    for (size_t s = 0; s < kStreams; ++s) {
      Block v;
      std::memcpy(&v, p + (s * blocks + i) * kWords, sizeof(Block));
      acc[s] += v;
    }
  uint64_t total = 0;
  for (const Block& a : acc)
    for (size_t l = 0; l < kWords; ++l) total += a[l];
  for (size_t i = blocks * kStreams * kWords; i < n; ++i) total += p[i];
  return total;
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
