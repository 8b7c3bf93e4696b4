// The instruction sets a kernel test can run on this CPU, and a scoped cap.
#pragma once

#include <vector>

#include "kernels/cpu_features.hpp"

namespace test_support {

inline std::vector<musespark::kernels::KernelIsa> available_isas() {
  using musespark::kernels::KernelIsa;
  std::vector<KernelIsa> out;
  for (KernelIsa isa : {KernelIsa::none, KernelIsa::avx2, KernelIsa::avx_vnni, KernelIsa::avx512})
    if (musespark::kernels::isa_supported(isa)) out.push_back(isa);
  return out;
}

// Caps the instruction set for its lifetime (restores the cap however the test ends).
struct IsaLimit {
  explicit IsaLimit(musespark::kernels::KernelIsa isa) { musespark::kernels::limit_isa(isa); }
  ~IsaLimit() { musespark::kernels::limit_isa(musespark::kernels::KernelIsa::avx512); }
  IsaLimit(const IsaLimit&) = delete;
  IsaLimit& operator=(const IsaLimit&) = delete;
};

}  // namespace test_support
