#include "kernels/packed_linear.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/linear_isa.hpp"

namespace musespark::kernels {
namespace {

using detail::kPanelRows;
using PanelFn = void (*)(const detail::LinearArgs&, int64_t, int64_t);

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// [n, k] -> panels [n/16, k/group, 16, group] (zero-padded to whole panels and groups).
at::Tensor to_panels(const at::Tensor& w, int64_t kp, int64_t group) {
  const int64_t n = w.size(0), k = w.size(1);
  const int64_t np = round_up(n, kPanelRows);
  at::Tensor padded = at::constant_pad_nd(w, {0, kp - k, 0, np - n});
  return padded.view({np / kPanelRows, kPanelRows, kp / group, group}).permute({0, 2, 1, 3}).contiguous();
}

// Runs fn over all panels on the ATen threads. Threads take chunks of panels
// from a shared counter rather than a fixed half each, so a core slowed by
// other work (this machine is shared) does less of it.
void run_panels(PanelFn fn, const detail::LinearArgs& a, int64_t panels) {
  const int threads = at::get_num_threads();
  // About 8 chunks per thread, each whole tiles (of 4 panels for up to 4
  // rows, 3 for more: a multiple of 12 is both).
  const int64_t chunk = std::max<int64_t>(12, round_up(panels / (int64_t(threads) * 8), 12));
  const int64_t chunks = (panels + chunk - 1) / chunk;
  if (threads <= 1 || chunks <= 1 || at::in_parallel_region()) {
    fn(a, 0, panels);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1))
      fn(a, c * chunk, std::min(panels, (c + 1) * chunk));
  });
}

}  // namespace

PackedLinear PackedLinear::pack(std::span<const at::Tensor> matrices, std::span<const at::Tensor> biases,
                                WeightFormat format) {
  if (matrices.empty()) throw std::invalid_argument("PackedLinear::pack: no matrices");
  if (!biases.empty() && biases.size() != matrices.size())
    throw std::invalid_argument("PackedLinear::pack: one bias per matrix, or none");
  PackedLinear p;
  p.format_ = format;
  p.k_ = matrices[0].size(1);
  for (const auto& m : matrices) {
    if (m.dim() != 2 || m.size(1) != p.k_) throw std::invalid_argument("PackedLinear::pack: matrices of one width");
    p.n_ += m.size(0);
  }
  const at::ScalarType stage = format == WeightFormat::bf16 ? at::kBFloat16 : at::kFloat;
  std::vector<at::Tensor> parts;
  for (const auto& m : matrices) parts.push_back(m.to(stage));
  at::Tensor w = parts.size() == 1 ? parts[0] : at::cat(parts, 0);

  if (format == WeightFormat::bf16) {
    p.kp_ = round_up(p.k_, detail::kBf16Group);
    p.data_ = to_panels(w, p.kp_, detail::kBf16Group);
  } else {
    p.kp_ = round_up(p.k_, detail::kInt8Group);
    at::Tensor amax = w.abs().amax(1);
    at::Tensor scale = amax / 127.0;
    at::Tensor q = at::round(w / at::where(amax > 0, scale, at::ones_like(scale)).unsqueeze(1))
                       .clamp(-127, 127)
                       .to(at::kChar);
    const int64_t np = round_up(p.n_, kPanelRows);
    p.scale_ = at::constant_pad_nd(scale, {0, np - p.n_}).contiguous();
    p.sum_ = at::constant_pad_nd(q.sum(1, /*keepdim=*/false, at::kInt), {0, np - p.n_}).contiguous();
    p.data_ = to_panels(q, p.kp_, detail::kInt8Group);
  }
  if (!biases.empty()) {
    std::vector<at::Tensor> b;
    for (const auto& t : biases) b.push_back(t.to(at::kFloat));
    p.bias_ = at::cat(b, 0).contiguous();
  }
  return p;
}

int64_t PackedLinear::weight_bytes() const noexcept {
  int64_t bytes = n_ * k_ * (format_ == WeightFormat::bf16 ? 2 : 1);
  if (format_ == WeightFormat::int8) bytes += n_ * (sizeof(float) + sizeof(int32_t));
  return bytes;
}

at::Tensor PackedLinear::unpacked() const {
  at::Tensor w = data_.permute({0, 2, 1, 3}).reshape({-1, kp_}).narrow(0, 0, n_).narrow(1, 0, k_).to(at::kFloat);
  if (format_ == WeightFormat::int8) w = w * scale_.narrow(0, 0, n_).unsqueeze(1);
  return w.contiguous();
}

at::Tensor PackedLinear::operator()(const at::Tensor& x, at::ScalarType out_dtype) const {
  if (x.dim() != 2 || x.size(1) != k_) throw std::invalid_argument("PackedLinear: x must be [rows, in_features]");
  if (out_dtype != at::kFloat && out_dtype != at::kBFloat16)
    throw std::invalid_argument("PackedLinear: the result is float32 or bf16");
  const int64_t rows = x.size(0);
  at::Tensor out = at::empty({rows, n_}, at::TensorOptions().dtype(out_dtype));
  if (rows == 0) return out;

  detail::LinearArgs a;
  a.weights = data_.data_ptr();
  a.kp = kp_;
  a.n = n_;
  a.bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
  a.rows = rows;
  a.out = out.data_ptr();
  a.out_stride = n_;
  a.out_f32 = out_dtype == at::kFloat;

  const KernelIsa isa = active_isa();
  at::Tensor xs, quantised, scales;  // operands that must outlive the call
  PanelFn fn = nullptr;
  auto padded = [&](at::ScalarType t) {
    at::Tensor v = x.to(t).contiguous();
    return kp_ == k_ ? v : at::constant_pad_nd(v, {0, kp_ - k_}).contiguous();
  };
  if (format_ == WeightFormat::bf16) {
    if (isa == KernelIsa::avx512) {
      xs = padded(at::kBFloat16);
      a.x_bf16 = reinterpret_cast<const uint16_t*>(xs.data_ptr());
      fn = detail::bf16_panels_avx512;
    } else {
      xs = padded(at::kFloat);
      a.x_f32 = xs.data_ptr<float>();
      fn = isa >= KernelIsa::avx2 ? detail::bf16_panels_avx2 : detail::bf16_panels_portable;
    }
  } else {
    xs = x.scalar_type() == at::kBFloat16 ? x.contiguous() : x.to(at::kFloat).contiguous();
    quantised = at::empty({rows, kp_}, at::TensorOptions().dtype(at::kChar));
    scales = at::empty({rows}, at::TensorOptions().dtype(at::kFloat));
    const bool bf16 = xs.scalar_type() == at::kBFloat16;
    a.x_offset128 = isa == KernelIsa::avx512 || isa == KernelIsa::avx_vnni;
    (isa == KernelIsa::avx512 ? detail::quantize_rows_avx512 : detail::quantize_rows_portable)(
        xs.data_ptr(), bf16, rows, k_, kp_, quantised.data_ptr<int8_t>(), scales.data_ptr<float>(), a.x_offset128);
    a.x_q = quantised.data_ptr<int8_t>();
    a.x_scale = scales.data_ptr<float>();
    a.weight_scale = scale_.data_ptr<float>();
    a.weight_sum = sum_.data_ptr<int32_t>();
    fn = isa == KernelIsa::avx512     ? detail::int8_panels_avx512
         : isa == KernelIsa::avx_vnni ? detail::int8_panels_avx_vnni
         : isa == KernelIsa::avx2     ? detail::int8_panels_avx2
                                      : detail::int8_panels_portable;
  }
  run_panels(fn, a, data_.size(0));
  return out;
}

}  // namespace musespark::kernels
