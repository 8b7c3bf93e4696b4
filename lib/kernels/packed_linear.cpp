#include "kernels/packed_linear.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
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

bool block_format(WeightFormat f) { return f == WeightFormat::q4 || f == WeightFormat::q8b; }

int64_t code_bytes(WeightFormat f, int64_t block) {
  return f == WeightFormat::q4 ? detail::q4_code_bytes(block) : detail::q8b_code_bytes(block);
}

// Byte of panel-block memory holding code t (< block) of lane i, and the
// shift of its nibble (q4) within it.
int64_t code_offset(WeightFormat f, int64_t lane, int64_t t, int& shift) {
  if (f == WeightFormat::q4) {
    shift = t >= 16 ? 4 : 0;
    return ((t % 16) / 4) * 64 + lane * 4 + t % 4;
  }
  shift = 0;
  return (t / 4) * 64 + lane * 4 + t % 4;
}

// Codes of one block of 32 for a given (d, m): round((w - m) / d) in [0, 15];
// returns the squared error of fmaf(d, q, m).
float round_block(const float* w, int64_t n, float d, float m, uint8_t* q) {
  const float inverse = d != 0 ? 1.0f / d : 0.0f;
  float error = 0;
  for (int64_t t = 0; t < n; ++t) {
    q[t] = static_cast<uint8_t>(std::clamp(std::nearbyint((w[t] - m) * inverse), 0.0f, 15.0f));
    const float e = std::fma(d, static_cast<float>(q[t]), m) - w[t];
    error += e * e;
  }
  return error;
}

// The q4 codes of a float row, block by block: starting from the block's
// min and max (d = (max - min) / 15, m = min) and from ranges shrunk to
// 90% and 80% of it, each refitted twice by least squares (the best d, m
// for the codes, then the codes for them); the least squared error wins.
// Never worse than plain min/max rounding, which is the first candidate.
// Only the first k values count; codes past them (to a whole block) are 0.
void quantise_q4_row(const float* w, int64_t k, uint8_t* codes, float* d, float* m) {
  for (int64_t b = 0; b * kQ4Block < k; ++b) {
    const float* v = w + b * kQ4Block;
    const int64_t n = std::min(kQ4Block, k - b * kQ4Block);
    const float lo = *std::min_element(v, v + n), hi = *std::max_element(v, v + n);
    uint8_t best[kQ4Block] = {}, q[kQ4Block] = {};
    d[b] = (hi - lo) / 15.0f;
    m[b] = lo;
    float best_error = round_block(v, n, d[b], m[b], best);
    for (float shrink : {1.0f, 0.9f, 0.8f}) {
      float cd = (hi - lo) * shrink / 15.0f, cm = lo + (hi - lo) * (1 - shrink) / 2;
      round_block(v, n, cd, cm, q);
      for (int pass = 0; pass < 2; ++pass) {
        double sq = 0, sqq = 0, sw = 0, sqw = 0;
        for (int64_t t = 0; t < n; ++t) {
          sq += q[t];
          sqq += double(q[t]) * q[t];
          sw += v[t];
          sqw += double(q[t]) * v[t];
        }
        const double det = double(n) * sqq - sq * sq;
        if (det <= 0) break;
        cd = static_cast<float>((double(n) * sqw - sq * sw) / det);
        cm = static_cast<float>((sw - cd * sq) / double(n));
        const float error = round_block(v, n, cd, cm, q);
        if (error < best_error) {
          best_error = error;
          d[b] = cd;
          m[b] = cm;
          std::copy(q, q + kQ4Block, best);
        }
      }
    }
    std::copy(best, best + kQ4Block, codes + b * kQ4Block);
  }
}

}  // namespace

PackedLinear PackedLinear::pack(std::span<const at::Tensor> matrices, std::span<const at::Tensor> biases,
                                WeightFormat format) {
  if (matrices.empty()) throw std::invalid_argument("PackedLinear::pack: no matrices");
  if (!biases.empty() && biases.size() != matrices.size())
    throw std::invalid_argument("PackedLinear::pack: one bias per matrix, or none");
  if (format == WeightFormat::q8b) throw std::invalid_argument("PackedLinear::pack: q8b is packed from codes only");
  const int64_t k = matrices[0].size(1);
  int64_t n = 0;
  for (const auto& m : matrices) {
    if (m.dim() != 2 || m.size(1) != k) throw std::invalid_argument("PackedLinear::pack: matrices of one width");
    n += m.size(0);
  }
  const at::ScalarType stage = format == WeightFormat::bf16 ? at::kBFloat16 : at::kFloat;
  std::vector<at::Tensor> parts;
  for (const auto& m : matrices) parts.push_back(m.to(stage));
  at::Tensor w = parts.size() == 1 ? parts[0] : at::cat(parts, 0);

  PackedLinear p;
  if (format == WeightFormat::q4) {
    // Zero-padded to whole blocks; the kernels multiply the padding by zero activations.
    const int64_t kp = round_up(k, kQ4Block);
    at::Tensor padded = at::constant_pad_nd(w, {0, kp - k}).contiguous();
    const float* rows = padded.data_ptr<float>();
    p = pack_codes(format, n, kp, kQ4Block, [&](int64_t r, uint8_t* codes, float* d, float* m) {
      quantise_q4_row(rows + r * kp, k, codes, d, m);
    });
    p.k_ = k;
  } else {
    Part part;
    part.format = format;
    part.n = n;
    if (format == WeightFormat::bf16) {
      part.kp = round_up(k, detail::kBf16Group);
      part.data = to_panels(w, part.kp, detail::kBf16Group);
    } else {
      part.kp = round_up(k, detail::kInt8Group);
      at::Tensor amax = w.abs().amax(1);
      at::Tensor scale = amax / 127.0;
      at::Tensor q = at::round(w / at::where(amax > 0, scale, at::ones_like(scale)).unsqueeze(1))
                         .clamp(-127, 127)
                         .to(at::kChar);
      const int64_t np = round_up(n, kPanelRows);
      part.scale = at::constant_pad_nd(scale, {0, np - n}).contiguous();
      part.sum = at::constant_pad_nd(q.sum(1, /*keepdim=*/false, at::kInt), {0, np - n}).contiguous();
      part.data = to_panels(q, part.kp, detail::kInt8Group);
    }
    p.n_ = n;
    p.k_ = k;
    p.parts_.push_back(std::move(part));
  }
  if (!biases.empty()) {
    std::vector<at::Tensor> b;
    for (const auto& t : biases) b.push_back(t.to(at::kFloat));
    p.bias_ = at::cat(b, 0).contiguous();
  }
  return p;
}

PackedLinear PackedLinear::pack_codes(WeightFormat format, int64_t n, int64_t k, int64_t block, const CodeRows& fill) {
  if (!block_format(format)) throw std::invalid_argument("PackedLinear::pack_codes: q4 or q8b only");
  if (format == WeightFormat::q4 ? block != kQ4Block : block != 16 && block != 32)
    throw std::invalid_argument("PackedLinear::pack_codes: blocks of 32 for q4, 16 or 32 for q8b");
  if (n <= 0 || k <= 0 || k % block != 0)
    throw std::invalid_argument("PackedLinear::pack_codes: k must be a positive whole number of blocks");
  Part part;
  part.format = format;
  part.n = n;
  part.kp = k;
  part.block = block;
  const int64_t panels = round_up(n, kPanelRows) / kPanelRows, blocks = k / block;
  const int64_t codes = code_bytes(format, block), block_bytes = codes + detail::kBlockScaleBytes;
  part.data = at::zeros({panels, blocks, block_bytes}, at::TensorOptions().dtype(at::kByte));
  uint8_t* data = part.data.data_ptr<uint8_t>();
  at::parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<uint8_t> row_codes(static_cast<size_t>(k));
    std::vector<float> d(static_cast<size_t>(blocks)), m(static_cast<size_t>(blocks));
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t i = 0; i < kPanelRows && p * kPanelRows + i < n; ++i) {
        fill(p * kPanelRows + i, row_codes.data(), d.data(), m.data());
        for (int64_t b = 0; b < blocks; ++b) {
          uint8_t* dst = data + (p * blocks + b) * block_bytes;
          for (int64_t t = 0; t < block; ++t) {
            const uint8_t c = row_codes[static_cast<size_t>(b * block + t)];
            if (format == WeightFormat::q4 && c > 15)
              throw std::invalid_argument("PackedLinear::pack_codes: a q4 code above 15");
            // Two statements: in `a[f(shift)] |= c << shift` the right side is
            // evaluated first (C++17), before f sets shift.
            int shift = 0;
            const int64_t at = code_offset(format, i, t, shift);
            dst[at] |= static_cast<uint8_t>(c << shift);
          }
          std::memcpy(dst + codes + i * 4, &d[static_cast<size_t>(b)], 4);
          std::memcpy(dst + codes + kPanelRows * 4 + i * 4, &m[static_cast<size_t>(b)], 4);
        }
      }
  });
  PackedLinear p;
  p.n_ = n;
  p.k_ = k;
  p.parts_.push_back(std::move(part));
  return p;
}

PackedLinear PackedLinear::stack(std::vector<PackedLinear> parts, std::span<const at::Tensor> biases) {
  if (parts.empty()) throw std::invalid_argument("PackedLinear::stack: no parts");
  PackedLinear p;
  p.k_ = parts[0].k_;
  for (PackedLinear& q : parts) {
    if (q.k_ != p.k_ || q.bias_.defined()) throw std::invalid_argument("PackedLinear::stack: parts of one width, no biases");
    for (Part& part : q.parts_) {
      part.n0 += p.n_;
      p.parts_.push_back(std::move(part));
    }
    p.n_ += q.n_;
  }
  if (!biases.empty()) {
    std::vector<at::Tensor> b;
    for (const auto& t : biases) b.push_back(t.to(at::kFloat).reshape({-1}));
    p.bias_ = at::cat(b, 0).contiguous();
    if (p.bias_.numel() != p.n_) throw std::invalid_argument("PackedLinear::stack: biases for every output, or none");
  }
  return p;
}

int64_t PackedLinear::weight_bytes() const noexcept {
  int64_t bytes = 0;
  for (const Part& part : parts_) {
    switch (part.format) {
      case WeightFormat::bf16: bytes += part.n * k_ * 2; break;
      case WeightFormat::int8: bytes += part.n * (k_ + sizeof(float) + sizeof(int32_t)); break;
      case WeightFormat::q4:
      case WeightFormat::q8b: bytes += part.data.numel() * part.n / (part.data.size(0) * kPanelRows); break;
    }
  }
  return bytes;
}

void PackedLinear::unpack_row(const Part& part, int64_t r, float* out) const {
  const int64_t panel = r / kPanelRows, lane = r % kPanelRows;
  if (!block_format(part.format)) {
    at::Tensor row = part.data.select(0, panel).select(1, lane).reshape({-1}).narrow(0, 0, k_).to(at::kFloat);
    if (part.format == WeightFormat::int8) row = row * part.scale[r];
    std::memcpy(out, row.contiguous().data_ptr<float>(), static_cast<size_t>(k_) * sizeof(float));
    return;
  }
  const int64_t blocks = part.kp / part.block, codes = code_bytes(part.format, part.block);
  const int64_t block_bytes = codes + detail::kBlockScaleBytes;
  const uint8_t* data = part.data.data_ptr<uint8_t>() + panel * blocks * block_bytes;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = data + b * block_bytes;
    float d, m;
    std::memcpy(&d, blk + codes + lane * 4, 4);
    std::memcpy(&m, blk + codes + kPanelRows * 4 + lane * 4, 4);
    for (int64_t t = 0; t < part.block && b * part.block + t < k_; ++t) {
      int shift = 0;
      const int64_t at = code_offset(part.format, lane, t, shift);  // sets shift: first, on its own
      const int code = (blk[at] >> shift) & (part.format == WeightFormat::q4 ? 15 : 255);
      out[b * part.block + t] = std::fma(d, static_cast<float>(code), m);
    }
  }
}

at::Tensor PackedLinear::unpacked_rows(const at::Tensor& ids) const {
  at::Tensor index = ids.to(at::kLong).contiguous();
  const int64_t count = index.numel();
  at::Tensor out = at::empty({count, k_}, at::TensorOptions().dtype(at::kFloat));
  const int64_t* id = index.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    if (id[i] < 0 || id[i] >= n_) throw std::invalid_argument("PackedLinear::unpacked_rows: row out of range");
    auto part = std::find_if(parts_.begin(), parts_.end(), [&](const Part& p) { return id[i] < p.n0 + p.n; });
    unpack_row(*part, id[i] - part->n0, out.data_ptr<float>() + i * k_);
  }
  return out;
}

at::Tensor PackedLinear::unpacked() const { return unpacked_rows(at::arange(n_, at::kLong)); }

void PackedLinear::run(const Part& part, const at::Tensor& x, at::Tensor& out) const {
  const int64_t rows = x.size(0);
  detail::LinearArgs a;
  a.weights = part.data.data_ptr();
  a.kp = part.kp;
  a.n = part.n;
  a.bias = bias_.defined() ? bias_.data_ptr<float>() + part.n0 : nullptr;
  a.rows = rows;
  a.out_f32 = out.scalar_type() == at::kFloat;
  a.out = static_cast<char*>(out.data_ptr()) + part.n0 * (a.out_f32 ? 4 : 2);
  a.out_stride = n_;

  const KernelIsa isa = active_isa();
  at::Tensor xs, quantised, scales, sums;  // operands that must outlive the call
  PanelFn fn = nullptr;
  auto padded = [&](at::ScalarType t) {
    at::Tensor v = x.to(t).contiguous();
    return part.kp == k_ ? v : at::constant_pad_nd(v, {0, part.kp - k_}).contiguous();
  };
  if (part.format == WeightFormat::bf16) {
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
    const bool bf16 = xs.scalar_type() == at::kBFloat16;
    quantised = at::empty({rows, part.kp}, at::TensorOptions().dtype(at::kChar));
    a.x_q = quantised.data_ptr<int8_t>();
    if (block_format(part.format)) {
      scales = at::empty({rows, part.kp / part.block}, at::TensorOptions().dtype(at::kFloat));
      sums = at::empty_like(scales);
      detail::quantize_blocks(xs.data_ptr(), bf16, rows, k_, part.kp, part.block, quantised.data_ptr<int8_t>(),
                              scales.data_ptr<float>(), sums.data_ptr<float>());
      a.block = part.block;
      a.x_block_scale = scales.data_ptr<float>();
      a.x_block_sum = sums.data_ptr<float>();
      const bool q4 = part.format == WeightFormat::q4;
      fn = isa == KernelIsa::avx512 ? (q4 ? detail::q4_panels_avx512 : detail::q8b_panels_avx512)
           : isa >= KernelIsa::avx2 ? (q4 ? detail::q4_panels_avx2 : detail::q8b_panels_avx2)
                                    : (q4 ? detail::q4_panels_portable : detail::q8b_panels_portable);
    } else {
      scales = at::empty({rows}, at::TensorOptions().dtype(at::kFloat));
      a.x_offset128 = isa == KernelIsa::avx512 || isa == KernelIsa::avx_vnni;
      (isa == KernelIsa::avx512 ? detail::quantize_rows_avx512 : detail::quantize_rows_portable)(
          xs.data_ptr(), bf16, rows, k_, part.kp, quantised.data_ptr<int8_t>(), scales.data_ptr<float>(),
          a.x_offset128);
      a.x_scale = scales.data_ptr<float>();
      a.weight_scale = part.scale.data_ptr<float>();
      a.weight_sum = part.sum.data_ptr<int32_t>();
      fn = isa == KernelIsa::avx512     ? detail::int8_panels_avx512
           : isa == KernelIsa::avx_vnni ? detail::int8_panels_avx_vnni
           : isa == KernelIsa::avx2     ? detail::int8_panels_avx2
                                        : detail::int8_panels_portable;
    }
  }
  run_panels(fn, a, part.data.size(0));
}

at::Tensor PackedLinear::operator()(const at::Tensor& x, at::ScalarType out_dtype) const {
  if (x.dim() != 2 || x.size(1) != k_) throw std::invalid_argument("PackedLinear: x must be [rows, in_features]");
  if (out_dtype != at::kFloat && out_dtype != at::kBFloat16)
    throw std::invalid_argument("PackedLinear: the result is float32 or bf16");
  at::Tensor out = at::empty({x.size(0), n_}, at::TensorOptions().dtype(out_dtype));
  if (x.size(0) == 0) return out;
  for (const Part& part : parts_) run(part, x, out);
  return out;
}

}  // namespace musespark::kernels
