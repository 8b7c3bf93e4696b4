// Linear layers for decode: weights prepacked once at load into the panel
// layout of kernels/linear_isa.hpp, multiplied by our own AVX-512 / AVX2
// loops that stream each weight once per call for up to 16 activation rows.
//
// Internal (includes ATen). Formats:
//   bf16 — the weights' bf16 values; float32 accumulation; the result is
//          rounded once (to bf16, or kept in float32).
//   int8 — symmetric per-output-row quantisation, w ~= scale[n] * q[n][k]
//          with q in [-127, 127] and scale = max|w[n]| / 127. Activations are
//          quantised the same way per row at each call; the integer dot
//          product is exact and scaled back in float32 (see int8_output).
#pragma once

#include <ATen/core/Tensor.h>

#include <span>

namespace musespark::kernels {

enum class WeightFormat { bf16, int8 };

class PackedLinear {
 public:
  PackedLinear() = default;

  // Packs the rows of `matrices` (each [n_i, k], any floating dtype) stacked
  // in order as one [sum n_i, k] matrix, so one call computes all of them
  // (e.g. q, k and v). `biases` is empty or holds one [n_i] tensor per
  // matrix. Multi-threaded (ATen); the result owns its memory.
  static PackedLinear pack(std::span<const at::Tensor> matrices, std::span<const at::Tensor> biases,
                           WeightFormat format);

  bool defined() const noexcept { return n_ > 0; }
  WeightFormat format() const noexcept { return format_; }
  int64_t out_features() const noexcept { return n_; }
  int64_t in_features() const noexcept { return k_; }
  // Bytes of weights (and per-row scales) one call reads.
  int64_t weight_bytes() const noexcept;

  // x [rows, k] (bf16 or float32; any number of rows, though beyond 16 the
  // weights are re-read from cache once per 16 rows) -> x W^T + bias as
  // [rows, n] of `out_dtype` (bf16 or float32). Runs on kernels::active_isa()
  // (bf16 without AVX2 falls back to portable loops: slow; callers that can
  // should use libtorch then) over at::get_num_threads() threads. Each
  // output row depends only on its own input row: results do not change
  // with the batch. Thread-safe.
  at::Tensor operator()(const at::Tensor& x, at::ScalarType out_dtype) const;

  // The weights the kernels multiply by, as float32 [n, k]: the bf16 values,
  // or q * scale for int8. For tests and accuracy references.
  at::Tensor unpacked() const;

 private:
  WeightFormat format_ = WeightFormat::bf16;
  int64_t n_ = 0, k_ = 0, kp_ = 0;  // kp_: k padded to a whole k-group
  at::Tensor data_;                 // the panels (uint16 bf16 bits or int8)
  at::Tensor scale_, sum_;          // int8: [panels*16] float32 scale, int32 sum of q
  at::Tensor bias_;                 // [n] float32, or undefined
};

}  // namespace musespark::kernels
