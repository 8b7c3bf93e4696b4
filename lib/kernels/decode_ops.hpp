// The small operations of a bf16 decode step (a few rows), fused into single
// loops: each ATen op on a tensor of one row costs microseconds of dispatch
// and allocation, and a step runs thousands of them.
//
// Internal (includes ATen). Each gives the result of the ATen sequence
// named beside it in lib/model/transformer.cpp, rounding to bf16 where that
// sequence does; only sums may be ordered differently (float32 or wider).
// Inputs are bf16; results are new contiguous bf16 tensors.
#pragma once

#include <ATen/core/Tensor.h>

namespace musespark::kernels {

// x [rows, n] (rows may be strided), weight [n]:
// weight * (x * rsqrt(mean(x^2) + eps)).to(bf16), the statistics in float32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// x + y then rms_norm of the sum: returns {sum, normed}.
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight,
                                               double eps);

// heads [rows, count, head_dim] (the last dim contiguous): an optional
// per-head rms_norm (weight [head_dim], or undefined), then rotate-half RoPE
// with cos/sin [rows, head_dim/2] (bf16): (x1, x2) -> (x1 c - x2 s, x2 c + x1 s).
at::Tensor norm_rope(const at::Tensor& heads, const at::Tensor& norm_weight, double eps, const at::Tensor& cos,
                     const at::Tensor& sin);

// gate_up [rows, 2i]: silu(gate) * up, gate the first i columns.
at::Tensor silu_mul(const at::Tensor& gate_up);

}  // namespace musespark::kernels
