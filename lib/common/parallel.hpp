// A small fork-join helper for work that is independent per item and too
// coarse for the tensor backend's pool (e.g. one sampler per agent).
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace musespark::detail {

// Calls fn(i) for i in [0, n) on up to `threads` threads (the caller's
// included) and returns when all are done. Results must not depend on which
// thread runs an item. The first exception thrown is rethrown here.
template <typename Fn>
void parallel_for(size_t n, int threads, Fn&& fn) {
  const size_t workers = std::min<size_t>(n, static_cast<size_t>(std::max(threads, 1)));
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::exception_ptr> errors(workers);
  auto run = [&](size_t w) {
    try {
      for (size_t i = w; i < n; i += workers) fn(i);
    } catch (...) {
      errors[w] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace musespark::detail
