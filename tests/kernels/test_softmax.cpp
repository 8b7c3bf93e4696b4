// The sampler's whole-vocabulary loops against plain scalar arithmetic, on
// every instruction set this CPU has.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/softmax.hpp"

using namespace musespark::kernels;

TEST_CASE("kernels: max_of and exp_shifted match scalar arithmetic, every instruction set") {
  for (KernelIsa isa : {KernelIsa::none, KernelIsa::avx512}) {
    if (!isa_supported(isa)) continue;
    CAPTURE(std::string(isa_name(isa)));
    limit_isa(isa);
    for (int64_t n : {1, 15, 16, 17, 1000, 151936}) {
      CAPTURE(n);
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(0.37 * i) * 20.0 - 5.0);
      x[static_cast<size_t>(n / 2)] = 31.5f;  // the largest, anywhere
      CHECK(max_of(x.data(), n) == 31.5f);

      std::vector<float> out(x.size());
      const double total = exp_shifted(x.data(), n, 31.5f, 0.7f, out.data());
      double want = 0;
      bool close = true;
      for (int64_t i = 0; i < n; ++i) {
        const double e = std::exp((double(x[i]) - 31.5) * 0.7);
        want += e;
        // The argument is formed in float (|arg| up to ~40 here: a few 1e-6
        // of it), then e^arg to about 1e-7.
        close = close && std::abs(out[i] - e) <= 1e-5 * e + 1e-30;
      }
      CHECK(close);
      CHECK(total == doctest::Approx(want).epsilon(1e-5));
    }
    std::vector<float> with_nan = {1.0f, NAN, 3.0f, -2.0f};
    CHECK(max_of(with_nan.data(), 4) == 3.0f);
  }
  limit_isa(KernelIsa::avx512);
}
