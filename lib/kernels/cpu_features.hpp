// Which instruction set the decode kernels use, chosen at run time.
//
// The library is compiled for the baseline x86-64; each kernel is compiled
// for its own instruction set with per-function target attributes and picked
// here from what the CPU reports, so one binary runs everywhere.
#pragma once

namespace musespark::kernels {

// In increasing order of preference. Each level implies the ones below it,
// except avx_vnni: a CPU with AVX-512 VNNI may lack the VEX-encoded AVX-VNNI
// (Cooper Lake), so a cap at avx_vnni falls back to avx2 there.
enum class KernelIsa {
  none,      // portable C++ (bf16 decode then stays on libtorch; see PackedLinear)
  avx2,      // AVX2 + FMA
  avx_vnni,  // AVX2 + FMA + AVX-VNNI: int8 by 256-bit vpdpbusd; bf16 as avx2
  avx512,    // AVX-512 F/BW/VL/DQ + BF16 (vdpbf16ps) + VNNI (vpdpbusd)
};

const char* isa_name(KernelIsa isa) noexcept;

// The best level this CPU supports.
KernelIsa detected_isa() noexcept;

// Whether this CPU can run the kernels of `isa` (every level up to the
// detected one, but avx_vnni only with AVX-VNNI).
bool isa_supported(KernelIsa isa) noexcept;

// The level the kernels use: the detected one, capped by the environment
// variable MUSESPARK_KERNELS (avx512 | avx_vnni | avx2 | none; read once) and by
// limit_isa(). Thread-safe.
KernelIsa active_isa() noexcept;

// Caps active_isa() at `limit` (for tests and benchmarks: force the fallback
// path); limit_isa(KernelIsa::avx512) removes the cap. Takes effect for the
// next kernel call on every thread.
void limit_isa(KernelIsa limit) noexcept;

}  // namespace musespark::kernels
