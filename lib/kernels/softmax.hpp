// Whole-vocabulary loops of the sampler: the largest logit, and e^x of every
// logit with its sum. A vocabulary is ~150 K entries and every agent samples
// from one each step, so these run at AVX-512 speed where the CPU has it
// (kernels::active_isa()), scalar otherwise. Internal; no ATen.
#pragma once

#include <cstdint>

namespace musespark::kernels {

// The largest of x[0, n): NaNs are skipped (-infinity when nothing else is
// there). Thread-safe; no errors.
float max_of(const float* x, int64_t n) noexcept;

// out[i] = e^((x[i] - shift) * scale) for i in [0, n) (float, relative error
// about 1e-7; arguments below -88 give about 0), and returns the sum of the
// out[i], accumulated in double. out may be x (in place). Thread-safe.
double exp_shifted(const float* x, int64_t n, float shift, float scale, float* out) noexcept;

}  // namespace musespark::kernels
