// The block formats (q4, q8b): codes packed by PackedLinear::pack_codes
// unpack to exactly fmaf(d, code, m); products equal the float product of
// the very operands the kernels multiply (the weights as unpacked, the
// activations quantised per block) within float32 summation error, and are
// bit-identical on every instruction set; q4 quantised from floats is
// within half a step of each block.
#include "doctest_with_aten.hpp"

#include <cmath>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_support.hpp"
#include "kernels/packed_linear.hpp"

using namespace musespark::kernels;
using test_support::available_isas;
using test_support::IsaLimit;

namespace {


// Random codes below `levels` and random (d, m) per block, as [n, k] codes
// and [n, k / block] scales and offsets.
struct Codes {
  at::Tensor codes, d, m;
};

Codes random_codes(int64_t n, int64_t k, int64_t block, int levels) {
  Codes c;
  c.codes = at::randint(0, levels, {n, k}, at::kByte);
  c.d = at::rand({n, k / block}) * 0.1 + 0.001;
  c.m = at::randn({n, k / block}) * c.d * (levels / 2.0);
  return c;
}

PackedLinear pack(WeightFormat format, int64_t block, const Codes& c) {
  const int64_t n = c.codes.size(0), k = c.codes.size(1);
  return PackedLinear::pack_codes(format, n, k, block, [&](int64_t r, uint8_t* codes, float* d, float* m) {
    std::memcpy(codes, c.codes[r].data_ptr<uint8_t>(), k);
    std::memcpy(d, c.d[r].data_ptr<float>(), (k / block) * 4);
    std::memcpy(m, c.m[r].data_ptr<float>(), (k / block) * 4);
  });
}

// fmaf(d, code, m) element by element.
at::Tensor expected_weights(const Codes& c, int64_t block) {
  at::Tensor d = c.d.repeat_interleave(block, 1), m = c.m.repeat_interleave(block, 1);
  at::Tensor q = c.codes.to(at::kFloat);
  at::Tensor out = at::empty_like(q);
  const float* dp = d.data_ptr<float>();
  const float* mp = m.data_ptr<float>();
  const float* qp = q.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < q.numel(); ++i) o[i] = std::fma(dp[i], qp[i], mp[i]);
  return out;
}

// What the kernels multiply by: each block of `block` values of a row
// quantised to round-half-even(x * 127/max|x|), times max|x|/127.
at::Tensor quantised_blocks(const at::Tensor& x, int64_t block) {
  at::Tensor b = x.view({x.size(0), -1, block});
  at::Tensor amax = b.abs().amax(2, true);
  at::Tensor inverse = at::where(amax > 0, 127.0f / amax, at::zeros_like(amax));
  return (at::round(b * inverse).clamp(-127, 127) * (amax / 127.0f)).view_as(x);
}

}  // namespace

TEST_CASE("kernels: q4 and q8b codes unpack exactly; products match the quantised operands on every instruction set") {
  at::manual_seed(11);
  struct Case {
    WeightFormat format;
    int64_t block;
    int levels;
  };
  const Case cases[] = {{WeightFormat::q4, 32, 16}, {WeightFormat::q8b, 16, 256}, {WeightFormat::q8b, 32, 256}};
  const int64_t shapes[][2] = {{1, 32}, {17, 64}, {50, 96}, {130, 256}, {300, 2048}};
  for (const Case& c : cases) {
    CAPTURE(int(c.format));
    CAPTURE(c.block);
    for (const auto& s : shapes) {
      CAPTURE(s[0]);
      CAPTURE(s[1]);
      const Codes codes = random_codes(s[0], s[1], c.block, c.levels);
      at::Tensor bias = at::randn({s[0]});
      PackedLinear alone = pack(c.format, c.block, codes);
      const at::Tensor biases[] = {bias};
      std::vector<PackedLinear> one;
      one.push_back(alone);
      PackedLinear p = PackedLinear::stack(std::move(one), biases);
      at::Tensor w = expected_weights(codes, c.block);
      REQUIRE(at::equal(p.unpacked(), w));
      // |d| code + |m|: the size of each weight's terms, which may cancel.
      at::Tensor terms = expected_weights({codes.codes, codes.d.abs(), codes.m.abs()}, c.block);
      for (int64_t rows : {1, 2, 3, 5, 8, 9, 17}) {
        CAPTURE(rows);
        at::Tensor x = at::randn({rows, s[1]}).to(at::kBFloat16);
        at::Tensor xq = quantised_blocks(x.to(at::kFloat), c.block);
        at::Tensor want = at::linear(xq.to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
        at::Tensor magnitude = at::linear(xq.abs().to(at::kDouble), terms.to(at::kDouble), bias.abs().to(at::kDouble));
        at::Tensor first;
        for (KernelIsa isa : available_isas()) {
          CAPTURE(std::string(isa_name(isa)));
          IsaLimit limit(isa);
          at::Tensor got = p(x, at::kFloat);
          CHECK(((got.to(at::kDouble) - want).abs() - magnitude * 1e-5 - 1e-6).max().item<double>() <= 0);
          if (!first.defined()) first = got;
          else CHECK(at::equal(got, first));
          CHECK(at::equal(p(x.to(at::kFloat), at::kFloat), got));
          // bf16 results: the float32 ones rounded once.
          CHECK(at::equal(p(x, at::kBFloat16), got.to(at::kBFloat16)));
        }
      }
    }
  }
}

TEST_CASE("kernels: q4 from floats is no worse than min/max rounding in any block, any width") {
  at::manual_seed(12);
  for (int64_t k : {7, 32, 33, 100, 256}) {
    CAPTURE(k);
    at::Tensor w = at::randn({40, k}) * at::rand({40, 1});
    PackedLinear p = PackedLinear::pack({&w, 1}, {}, WeightFormat::q4);
    CHECK(p.in_features() == k);
    at::Tensor wq = p.unpacked();
    REQUIRE(wq.sizes() == w.sizes());
    const int64_t kp = (k + 31) / 32 * 32;
    at::Tensor blocks = at::constant_pad_nd(w, {0, kp - k}).view({40, -1, 32});
    // Min and max of each block's real values (the padding repeats the row's last one).
    at::Tensor tail = w.narrow(1, k - 1, 1).expand({40, kp - k});
    blocks = at::cat({w, tail}, 1).view({40, -1, 32});
    at::Tensor lo = blocks.amin(2, true), step = (blocks.amax(2, true) - lo) / 15;
    at::Tensor safe = at::where(step > 0, step, at::ones_like(step));
    at::Tensor rtn = (at::round((blocks - lo) / safe).clamp(0, 15) * step + lo).view({40, -1}).narrow(1, 0, k);
    auto block_error = [&](const at::Tensor& q) {
      return at::constant_pad_nd((q - w).pow(2), {0, kp - k}).view({40, -1, 32}).sum(2);
    };
    CHECK((block_error(wq) - block_error(rtn) * 1.0001 - 1e-9).max().item<float>() <= 0.0f);
    CHECK(block_error(wq).sum().item<float>() < block_error(rtn).sum().item<float>());
    step = step.squeeze(2).repeat_interleave(32, 1).narrow(1, 0, k);
    // And the product is that of the unpacked weights (padding adds nothing).
    at::Tensor x = at::randn({3, k});
    at::Tensor xq = quantised_blocks(at::constant_pad_nd(x, {0, kp - k}), 32).narrow(1, 0, k);
    at::Tensor want = at::linear(xq, wq);
    at::Tensor magnitude = at::linear(xq.abs(), wq.abs() + step);
    CHECK(((p(x, at::kFloat) - want).abs() - magnitude * 1e-5 - 1e-6).max().item<float>() <= 0.0f);
  }
}

TEST_CASE("kernels: stacked parts of different formats give each part's columns, as if packed alone") {
  at::manual_seed(13);
  const Codes a = random_codes(40, 64, 32, 16), b = random_codes(24, 64, 16, 256);
  at::Tensor plain = at::randn({9, 64});
  const at::Tensor biases[] = {at::randn({40}), at::randn({24}), at::randn({9})};
  std::vector<PackedLinear> parts{pack(WeightFormat::q4, 32, a), pack(WeightFormat::q8b, 16, b),
                                  PackedLinear::pack({&plain, 1}, {}, WeightFormat::int8)};
  PackedLinear all = PackedLinear::stack(parts, biases);
  CHECK(all.out_features() == 73);
  CHECK(all.weight_bytes() == parts[0].weight_bytes() + parts[1].weight_bytes() + parts[2].weight_bytes());
  at::Tensor x = at::randn({5, 64}).to(at::kBFloat16);
  at::Tensor out = all(x, at::kFloat);
  int64_t col = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const int64_t n = parts[i].out_features();
    at::Tensor alone = parts[i](x, at::kFloat) + biases[i];
    // Block parts add the bias last, as here; int8's epilogue may fuse it (FMA): within an ulp.
    if (i < 2) CHECK(at::equal(out.narrow(1, col, n), alone));
    else CHECK(at::allclose(out.narrow(1, col, n), alone, 1e-6, 1e-5));
    CHECK(at::equal(all.unpacked().narrow(0, col, n), parts[i].unpacked()));
    col += n;
  }
  // One row of the table, as an embedding lookup would read it.
  CHECK(at::equal(all.unpacked_rows(at::tensor({45, 2}, at::kLong)), all.unpacked().index_select(0, at::tensor({45, 2}, at::kLong))));
  // Bad codes and shapes are refused.
  CHECK_THROWS_AS(PackedLinear::pack_codes(WeightFormat::q4, 4, 48, 32, [](int64_t, uint8_t*, float*, float*) {}),
                  std::invalid_argument);
  CHECK_THROWS_AS(PackedLinear::pack_codes(WeightFormat::q4, 4, 32, 32,
                                           [](int64_t, uint8_t* c, float*, float*) { c[0] = 16; }),
                  std::invalid_argument);
}
