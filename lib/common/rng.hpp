// Deterministic randomness, the library's one seeded RNG: splitmix64 (seeds
// derived from seeds: the agents' from a request's, the curriculum's
// streams), and bounded integers by rejection, so that a (seed, index,
// stream) gives the same numbers with every compiler and standard library
// (std::*_distribution are not specified bit-for-bit). Not thread-safe: one
// Rng per thread.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

namespace musespark::detail {

inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// splitmix64's step: a well-mixed 64-bit value from any `x` (distinct
// inputs, distinct outputs).
inline uint64_t splitmix64(uint64_t x) { return mix(x + 0x9E3779B97F4A7C15ull); }

class Rng {
 public:
  Rng(uint64_t seed, uint64_t index, uint64_t stream) : state_(mix(mix(mix(seed) ^ index) + stream)) {}

  uint64_t next() { return mix(state_ += 0x9E3779B97F4A7C15ull); }

  // Uniform in [lo, hi]; lo <= hi.
  int between(int lo, int hi) {
    const uint64_t span = static_cast<uint64_t>(static_cast<int64_t>(hi) - lo) + 1;
    const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % span;
    uint64_t x = next();
    while (x >= limit) x = next();
    return static_cast<int>(lo + static_cast<int64_t>(x % span));
  }
  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }

  template <class T>
  const T& pick(std::span<const T> items) {
    return items[static_cast<size_t>(between(0, static_cast<int>(items.size()) - 1))];
  }
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i)
      std::swap(items[i - 1], items[static_cast<size_t>(between(0, static_cast<int>(i) - 1))]);
  }

 private:
  uint64_t state_;
};

}  // namespace musespark::detail
