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

#include <functional>
#include <span>
#include <vector>

namespace musespark::kernels {

enum class WeightFormat { bf16, int8, q4, q8b };

// Elements per block of q4 (q8b: 16 or 32).
inline constexpr int64_t kQ4Block = 32;

class PackedLinear {
 public:
  PackedLinear() = default;

  // Packs the rows of `matrices` (each [n_i, k], any floating dtype) stacked
  // in order as one [sum n_i, k] matrix, so one call computes all of them
  // (e.g. q, k and v). `biases` is empty or holds one [n_i] tensor per
  // matrix. Multi-threaded (ATen); the result owns its memory.
  // q4 quantises each block of 32 by its min and max (16 levels between).
  // q8b cannot be packed from floats (use pack_codes).
  static PackedLinear pack(std::span<const at::Tensor> matrices, std::span<const at::Tensor> biases,
                           WeightFormat format);

  // Rows already quantised: fill(row, codes, d, m) writes row `row` (< n) as
  // k codes (unsigned: < 16 for q4) and k / block pairs (d, m) of its blocks,
  // w = fmaf(d, code, m). `format` q4 (block 32) or q8b (block 16 or 32);
  // k must be a whole number of blocks. fill is called from several threads
  // at once (each row once), so it must be thread-safe. Throws
  // std::invalid_argument for a bad format, block or k.
  using CodeRows = std::function<void(int64_t row, uint8_t* codes, float* d, float* m)>;
  static PackedLinear pack_codes(WeightFormat format, int64_t n, int64_t k, int64_t block, const CodeRows& fill);

  // `parts` (each packed alone, without biases, all of one in_features)
  // stacked as one: their outputs side by side, in order, from one call.
  // Parts keep their own formats (a GGUF layer may hold q and k as Q4_K and
  // v as Q6_K). `biases`: none, or tensors whose elements in order are one
  // per output (e.g. one per matrix stacked in the parts).
  static PackedLinear stack(std::vector<PackedLinear> parts, std::span<const at::Tensor> biases);

  bool defined() const noexcept { return n_ > 0; }
  // The first part's format (see stack()).
  WeightFormat format() const noexcept { return parts_.empty() ? WeightFormat::bf16 : parts_[0].format; }
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
  // q * scale for int8, fmaf(d, q, m) for the block formats. For tests and
  // accuracy references.
  at::Tensor unpacked() const;
  // Rows `ids` (int64, each < out_features) of unpacked(), as float32
  // [ids, k]: an embedding lookup from a packed table. Thread-safe.
  at::Tensor unpacked_rows(const at::Tensor& ids) const;

 private:
  struct Part {
    WeightFormat format = WeightFormat::bf16;
    int64_t n0 = 0, n = 0;         // its output columns [n0, n0 + n)
    int64_t kp = 0, block = 0;     // kp: k padded to a whole k-group or block
    at::Tensor data;               // the panels (uint16 bf16 bits, int8, or blocks as uint8)
    at::Tensor scale, sum;         // int8: [panels*16] float32 scale, int32 sum of q
  };
  void run(const Part& part, const at::Tensor& x, at::Tensor& out) const;
  // Row r of part as k floats.
  void unpack_row(const Part& part, int64_t r, float* out) const;

  int64_t n_ = 0, k_ = 0;
  std::vector<Part> parts_;
  at::Tensor bias_;  // [n] float32, or undefined
};

}  // namespace musespark::kernels
