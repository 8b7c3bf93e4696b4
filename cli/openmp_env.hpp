// How long the tensor backend's OpenMP workers spin before they sleep.
//
// libgomp's default spins for a long time after every parallel region and
// takes the cores from OpenBLAS's own threads (f32 prefill was up to 7x
// slower here); OMP_WAIT_POLICY=PASSIVE sleeps at once and costs bf16 decode
// a quarter of its speed in futex wake-ups. A short spin is best for both
// (measured on this 2-core machine with `musespark bench`):
//
//                      passive   spin 20000   default (active)
//   f32 decode steps/s    8.2        7.7          1.3
//   bf16 decode steps/s  14.0       18.1         18.8
//   bf16 batch 8 steps/s  7.2       11.0         11.2
//
// libgomp reads these variables only when it is loaded, so a program that
// wants them restarts itself once with them set, unless the user chose.
#pragma once

#include <unistd.h>

#include <cstdlib>

namespace musespark::cli {

inline void prefer_short_openmp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  setenv("GOMP_SPINCOUNT", "20000", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

}  // namespace musespark::cli
