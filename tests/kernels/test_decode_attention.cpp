// The decode attention kernel against attention computed in float32 by ATen
// from the same bf16 inputs: several sequences, each over its own chain of
// segments of different lengths (strided caches, as KvSegment holds them).
#include "doctest_with_aten.hpp"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/decode_attention.hpp"

using namespace musespark::kernels;

namespace {

const uint16_t* bits(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }

struct Case {
  int64_t heads, kv_heads, head_dim;
  std::vector<std::vector<int64_t>> lengths;  // per row: its segments' lengths
};

// softmax(q k^T * scale) v per query head, in float32, over the row's
// segments concatenated.
at::Tensor reference(const at::Tensor& q_row, const std::vector<at::Tensor>& ks, const std::vector<at::Tensor>& vs,
                     const Case& c, float scale) {
  at::Tensor k = at::cat(ks, 1).to(at::kFloat), v = at::cat(vs, 1).to(at::kFloat);  // [kvh, L, hd]
  const int64_t group = c.heads / c.kv_heads;
  at::Tensor q = q_row.to(at::kFloat).view({c.kv_heads, group, c.head_dim});
  at::Tensor p = at::softmax(at::bmm(q, k.transpose(1, 2)) * scale, -1);
  return at::bmm(p, v).reshape({c.heads * c.head_dim});
}

void check_case(const Case& c) {
  CAPTURE(c.heads);
  CAPTURE(c.kv_heads);
  CAPTURE(c.head_dim);
  const int64_t rows = static_cast<int64_t>(c.lengths.size()), hd = c.head_dim;
  const DecodeAttentionShape shape{c.heads, c.kv_heads, hd, static_cast<float>(1.0 / std::sqrt(double(hd)))};
  REQUIRE(decode_attention_available(shape));
  // q rows inside a wider tensor (a row stride larger than heads * hd).
  at::Tensor q_wide = at::randn({rows, c.heads * hd + 40}).to(at::kBFloat16);
  at::Tensor q = q_wide.narrow(1, 8, c.heads * hd);
  std::vector<at::Tensor> storage;  // keeps the caches alive
  std::vector<KvView> views;
  std::vector<int64_t> first{0};
  std::vector<at::Tensor> want;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<at::Tensor> ks, vs;
    for (int64_t len : c.lengths[r]) {
      // [kv_heads, capacity, hd] with capacity beyond the length, as a cache.
      at::Tensor K = (at::randn({c.kv_heads, len + 5, hd}) * 2).to(at::kBFloat16);
      at::Tensor V = at::randn({c.kv_heads, len + 5, hd}).to(at::kBFloat16);
      storage.push_back(K);
      storage.push_back(V);
      views.push_back({bits(K), bits(V), len, K.stride(0), K.stride(1)});
      ks.push_back(K.narrow(1, 0, len));
      vs.push_back(V.narrow(1, 0, len));
    }
    first.push_back(static_cast<int64_t>(views.size()));
    want.push_back(reference(q[r], ks, vs, c, shape.scale));
  }
  at::Tensor out = at::empty({rows, c.heads * hd}, at::kBFloat16);
  decode_attention(bits(q), q.stride(0), rows, shape, views, first,
                   reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()));
  at::Tensor expected = at::stack(want);
  // One bf16 rounding of the float result (plus float-order noise).
  at::Tensor err = (out.to(at::kFloat) - expected).abs() - expected.abs() / 256 - 1e-4;
  CHECK(err.max().item<float>() <= 0.0f);
}

}  // namespace

TEST_CASE("decode attention: each sequence over its own segments, against float32 attention") {
  if (detected_isa() != KernelIsa::avx512) return;  // the engine keeps ATen's attention there
  at::manual_seed(21);
  // Qwen3-0.6B's grouping (16 heads over 8), one to three segments per row, lengths 1..300.
  check_case({16, 8, 128, {{37}, {12, 1}, {300}, {5, 90, 3}}});
  // Query heads per KV head 1, 3, 5 and 8 (the register blocks of 1-4 heads), head_dim 32, 64 and 96.
  check_case({4, 4, 64, {{1}, {17}}});
  check_case({6, 2, 96, {{33, 2}, {64}}});
  check_case({5, 1, 32, {{7}, {16}, {129}}});
  check_case({8, 1, 128, {{250}}});
}

TEST_CASE("decode attention: large calls use the threads and give the same result as one thread") {
  if (detected_isa() != KernelIsa::avx512) return;
  at::manual_seed(22);
  const int64_t rows = 8, heads = 16, kvh = 8, hd = 128, len = 400;
  const DecodeAttentionShape shape{heads, kvh, hd, 0.088f};
  at::Tensor q = at::randn({rows, heads * hd}).to(at::kBFloat16);
  at::Tensor K = at::randn({kvh, len, hd}).to(at::kBFloat16), V = at::randn({kvh, len, hd}).to(at::kBFloat16);
  std::vector<KvView> views;
  std::vector<int64_t> first{0};
  for (int64_t r = 0; r < rows; ++r) {
    views.push_back({bits(K), bits(V), len - 13 * r, K.stride(0), K.stride(1)});
    first.push_back(r + 1);
  }
  auto run = [&](int threads) {
    const int before = at::get_num_threads();
    at::set_num_threads(threads);
    at::Tensor out = at::empty({rows, heads * hd}, at::kBFloat16);
    decode_attention(bits(q), q.stride(0), rows, shape, views, first, reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()));
    at::set_num_threads(before);
    return out;
  };
  CHECK(at::equal(run(1), run(2)));
}

TEST_CASE("decode attention: not offered below AVX-512 BF16 or for head sizes it does not tile") {
  CHECK_FALSE(decode_attention_available({4, 2, 48, 1.0f}));
  CHECK_FALSE(decode_attention_available({4, 3, 64, 1.0f}));
  limit_isa(KernelIsa::avx2);
  CHECK_FALSE(decode_attention_available({4, 2, 64, 1.0f}));
  limit_isa(KernelIsa::avx512);
  CHECK(decode_attention_available({4, 2, 64, 1.0f}) == (detected_isa() == KernelIsa::avx512));
}
