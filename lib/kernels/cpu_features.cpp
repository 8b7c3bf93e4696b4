#include "kernels/cpu_features.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>

namespace musespark::kernels {
namespace {

bool has_avx_vnni() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avxvnni");
#else
  return false;
#endif
}

KernelIsa detect() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni"))
    return KernelIsa::avx512;
  if (has_avx_vnni()) return KernelIsa::avx_vnni;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return KernelIsa::avx2;
#endif
  return KernelIsa::none;
}

KernelIsa environment_limit() noexcept {
  const char* v = std::getenv("MUSESPARK_KERNELS");
  if (v == nullptr) return KernelIsa::avx512;
  const std::string_view s(v);
  if (s == "none") return KernelIsa::none;
  if (s == "avx2") return KernelIsa::avx2;
  if (s == "avx_vnni") return KernelIsa::avx_vnni;
  return KernelIsa::avx512;
}

std::atomic<KernelIsa> g_limit{KernelIsa::avx512};

}  // namespace

const char* isa_name(KernelIsa isa) noexcept {
  switch (isa) {
    case KernelIsa::none: return "none";
    case KernelIsa::avx2: return "avx2";
    case KernelIsa::avx_vnni: return "avx_vnni";
    case KernelIsa::avx512: return "avx512";
  }
  return "none";
}

KernelIsa detected_isa() noexcept {
  static const KernelIsa isa = detect();
  return isa;
}

bool isa_supported(KernelIsa isa) noexcept {
  static const bool vnni = has_avx_vnni();
  return isa <= detected_isa() && (isa != KernelIsa::avx_vnni || vnni);
}

KernelIsa active_isa() noexcept {
  static const KernelIsa from_env = std::min(detected_isa(), environment_limit());
  const KernelIsa isa = std::min(from_env, g_limit.load(std::memory_order_relaxed));
  return isa_supported(isa) ? isa : KernelIsa::avx2;
}

void limit_isa(KernelIsa limit) noexcept { g_limit.store(limit, std::memory_order_relaxed); }

}  // namespace musespark::kernels
