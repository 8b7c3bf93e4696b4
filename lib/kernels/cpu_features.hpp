// Which instruction set the decode kernels use, chosen at run time.
//
// The library is compiled for the baseline x86-64; each kernel is compiled
// for its own instruction set with per-function target attributes and picked
// here from what the CPU reports, so one binary runs everywhere.
#pragma once

namespace musespark::kernels {

// In increasing order; each level implies the ones below it.
enum class KernelIsa {
  none,    // portable C++ (bf16 decode then stays on libtorch; see PackedLinear)
  avx2,    // AVX2 + FMA
  avx512,  // AVX-512 F/BW/VL/DQ + BF16 (vdpbf16ps) + VNNI (vpdpbusd)
};

const char* isa_name(KernelIsa isa) noexcept;

// The best level this CPU supports.
KernelIsa detected_isa() noexcept;

// The level the kernels use: the detected one, capped by the environment
// variable MUSESPARK_KERNELS (avx512 | avx2 | none; read once) and by
// limit_isa(). Thread-safe.
KernelIsa active_isa() noexcept;

// Caps active_isa() at `limit` (for tests and benchmarks: force the fallback
// path); limit_isa(KernelIsa::avx512) removes the cap. Takes effect for the
// next kernel call on every thread.
void limit_isa(KernelIsa limit) noexcept;

}  // namespace musespark::kernels
