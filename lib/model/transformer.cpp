#include "model/transformer.hpp"

#include <ATen/ATen.h>
#include <ATen/TensorIndexing.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>

#include <fmt/format.h>

#include "kernels/decode_attention.hpp"
#include "kernels/decode_ops.hpp"
#include "model/gguf_model.hpp"
#include "model/weights_torch.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {
namespace {

const uint16_t* bf16_data(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }

// The decode form of Transformer::attention for bf16 rows of one new token
// each (q [T, heads, hd], k/v [T, kv_heads, hd], head_dim contiguous): writes
// each item's K/V at its own position, then kernels::decode_attention over
// each item's own segments and lengths. Returns [T, heads * hd].
at::Tensor kernel_attention(std::span<const ForwardItem> items, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, int64_t layer, const kernels::DecodeAttentionShape& shape) {
  const int64_t T = static_cast<int64_t>(items.size()), hd = shape.head_dim;
  std::vector<kernels::KvView> views;
  std::vector<int64_t> first{0};
  auto view_of = [&](const KvSegment& s, int64_t length) {
    return kernels::KvView{bf16_data(s.k) + layer * s.k.stride(0), bf16_data(s.v) + layer * s.v.stride(0), length,
                           s.k.stride(1), s.k.stride(2)};
  };
  for (int64_t r = 0; r < T; ++r) {
    const KvCache& c = *items[r].cache;
    const KvSegment& own = *c.own;
    uint16_t* kd = const_cast<uint16_t*>(bf16_data(own.k)) + layer * own.k.stride(0) + c.own_length * own.k.stride(2);
    uint16_t* vd = const_cast<uint16_t*>(bf16_data(own.v)) + layer * own.v.stride(0) + c.own_length * own.v.stride(2);
    for (int64_t g = 0; g < shape.kv_heads; ++g) {
      std::memcpy(kd + g * own.k.stride(1), bf16_data(k) + r * k.stride(0) + g * k.stride(1), hd * sizeof(uint16_t));
      std::memcpy(vd + g * own.v.stride(1), bf16_data(v) + r * v.stride(0) + g * v.stride(1), hd * sizeof(uint16_t));
    }
    for (const SharedKv& s : c.shared)
      if (s.length > 0) views.push_back(view_of(*s.segment, s.length));
    views.push_back(view_of(own, c.own_length + 1));
    first.push_back(static_cast<int64_t>(views.size()));
  }
  at::Tensor out = at::empty({T, shape.heads * hd}, q.options());
  kernels::decode_attention(bf16_data(q), q.stride(0), T, shape, views, first,
                            reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()));
  return out;
}

// HF's llama3 rope scaling: long wavelengths are slowed by `factor`, short ones
// kept, and the band between interpolated smoothly.
at::Tensor llama3_scale(const at::Tensor& inv_freq, const RopeScaling& s) {
  const double low_freq_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_freq_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  at::Tensor wavelen = 2 * std::numbers::pi / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  at::Tensor smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                      (s.high_freq_factor - s.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  at::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(medium, smoothed, scaled);
}

// x: [rows, heads, head_dim]; cos/sin: [rows, head_dim/2] in x's dtype.
// Rotate-half RoPE written on the two halves: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s).
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.unsqueeze(1);
  at::Tensor s = sin.unsqueeze(1);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = {}) {
  return bias.defined() ? at::linear(x, w, bias) : at::linear(x, w);
}

// The kernels' format of a GGUF matrix's affine block layout: q4 for 4-bit
// codes in blocks of 32, q8b for the rest.
kernels::WeightFormat gguf_format(const AffineLayout& layout) {
  return layout.code_bits <= 4 && layout.block == kernels::kQ4Block ? kernels::WeightFormat::q4
                                                                     : kernels::WeightFormat::q8b;
}

bool same_gguf_layout(const TensorView& a, const TensorView& b) {
  const AffineLayout la = *affine_layout(a.gguf_blocks->type), lb = *affine_layout(b.gguf_blocks->type);
  return gguf_format(la) == gguf_format(lb) && la.block == lb.block;
}

// GGUF block-quantised matrices of one layout, stacked, repacked for the
// kernels without loss (rows read one at a time: no float copy).
kernels::PackedLinear pack_gguf(const std::vector<const TensorView*>& views) {
  const AffineLayout layout = *affine_layout(views[0]->gguf_blocks->type);
  const int64_t k = views[0]->shape[1];
  std::vector<int64_t> first{0};
  for (const TensorView* v : views) first.push_back(first.back() + v->shape[0]);
  return kernels::PackedLinear::pack_codes(
      gguf_format(layout), first.back(), k, layout.block, [&](int64_t row, uint8_t* codes, float* d, float* m) {
        const size_t i = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), row) - first.begin() - 1);
        const TensorView& v = *views[i];
        const int64_t blocks = k / layout.block;
        affine_row(*v.gguf_blocks, gguf_source_row(v, row - first[i]), {codes, static_cast<size_t>(k)},
                   {d, static_cast<size_t>(blocks)}, {m, static_cast<size_t>(blocks)});
      });
}

}  // namespace

Transformer::Transformer(ModelConfig config, const WeightStore& store, at::ScalarType dtype,
                         int64_t max_context, MatrixFormat matrices)
    : config_(std::move(config)), dtype_(dtype), matrices_(matrices) {
  const auto& c = config_;
  const int64_t H = c.hidden_size, hd = c.head_dim;
  const int64_t q_dim = c.num_attention_heads * hd, kv_dim = c.num_key_value_heads * hd;
  const int64_t elem = at::elementSize(dtype);
  const bool packed_only = matrices == MatrixFormat::int8 || matrices == MatrixFormat::q4;
  const auto packed_format = matrices == MatrixFormat::int8 ? kernels::WeightFormat::int8
                             : matrices == MatrixFormat::q4 ? kernels::WeightFormat::q4
                                                            : kernels::WeightFormat::bf16;

  auto load = [&](const std::string& name, std::vector<int64_t> shape) {
    const TensorView& view = store.require(name, shape);
    at::Tensor t = to_tensor(view, dtype_, store.keepalive());
    parameter_count_ += t.numel();
    bytes_per_token_ += t.numel() * elem;
    return t;
  };
  // A matrix: its view, and (unless it stays GGUF blocks) its tensor in `slot`.
  auto matrix = [&](at::Tensor& slot, const std::string& name, std::vector<int64_t> shape) {
    const TensorView& view = store.require(name, shape);
    if (view.gguf_blocks) {
      parameter_count_ += view.numel();
      return &view;
    }
    slot = load(name, std::move(shape));
    return &view;
  };
  // Packs stacked matrices (and their biases) for the kernels; int8 and q4
  // keep only the packed form, so the plain tensors are released. q4: runs
  // of GGUF matrices of one block layout become one part each (pack_gguf),
  // runs of float ones one q4 part each.
  using Source = std::pair<at::Tensor*, const TensorView*>;
  auto pack = [&](std::initializer_list<Source> parts, std::initializer_list<const at::Tensor*> biases) {
    if (matrices_ == MatrixFormat::plain) return kernels::PackedLinear{};
    std::vector<at::Tensor> bs;
    for (const at::Tensor* b : biases)
      if (b->defined()) bs.push_back(*b);
    kernels::PackedLinear packed;
    if (matrices_ != MatrixFormat::q4) {
      std::vector<at::Tensor> ws;
      for (const auto& [w, view] : parts) ws.push_back(*w);
      packed = kernels::PackedLinear::pack(ws, bs, packed_format);
    } else {
      std::vector<kernels::PackedLinear> runs;
      std::vector<const TensorView*> blocks;
      std::vector<at::Tensor> floats;
      auto flush = [&] {
        if (!blocks.empty()) runs.push_back(pack_gguf(blocks));
        if (!floats.empty()) runs.push_back(kernels::PackedLinear::pack(floats, {}, packed_format));
        blocks.clear();
        floats.clear();
      };
      for (const auto& [w, view] : parts) {
        if (view->gguf_blocks ? !floats.empty() || (!blocks.empty() && !same_gguf_layout(*blocks[0], *view))
                              : !blocks.empty())
          flush();
        if (view->gguf_blocks) blocks.push_back(view);
        else floats.push_back(*w);
      }
      flush();
      packed = runs.size() == 1 && bs.empty() ? std::move(runs[0]) : kernels::PackedLinear::stack(std::move(runs), bs);
    }
    for (const auto& [w, view] : parts) {
      if (packed_only && w->defined()) {
        bytes_per_token_ -= w->numel() * elem;
        *w = at::Tensor();
      }
    }
    if (packed_only) bytes_per_token_ += packed.weight_bytes();
    return packed;
  };

  const TensorView& embed = store.require("model.embed_tokens.weight", {c.vocab_size, H});
  if (embed.gguf_blocks) {
    w_.embed_packed = pack_gguf({&embed});
    parameter_count_ += embed.numel();
  } else {
    w_.embed_tokens = to_tensor(embed, dtype_, store.keepalive());
    parameter_count_ += w_.embed_tokens.numel();
  }
  bytes_per_token_ += H * elem;  // decoding reads one row of the embedding
  w_.layers.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerWeights& l = w_.layers[i];
    l.input_norm = load(p + "input_layernorm.weight", {H});
    l.post_attention_norm = load(p + "post_attention_layernorm.weight", {H});
    const TensorView* q = matrix(l.q_proj, p + "self_attn.q_proj.weight", {q_dim, H});
    const TensorView* k = matrix(l.k_proj, p + "self_attn.k_proj.weight", {kv_dim, H});
    const TensorView* v = matrix(l.v_proj, p + "self_attn.v_proj.weight", {kv_dim, H});
    const TensorView* o = matrix(l.o_proj, p + "self_attn.o_proj.weight", {H, q_dim});
    if (c.qkv_bias) {
      l.q_bias = load(p + "self_attn.q_proj.bias", {q_dim});
      l.k_bias = load(p + "self_attn.k_proj.bias", {kv_dim});
      l.v_bias = load(p + "self_attn.v_proj.bias", {kv_dim});
    }
    if (c.qk_norm) {
      l.q_norm = load(p + "self_attn.q_norm.weight", {hd});
      l.k_norm = load(p + "self_attn.k_norm.weight", {hd});
    }
    const TensorView* gate = matrix(l.gate_proj, p + "mlp.gate_proj.weight", {c.intermediate_size, H});
    const TensorView* up = matrix(l.up_proj, p + "mlp.up_proj.weight", {c.intermediate_size, H});
    const TensorView* down = matrix(l.down_proj, p + "mlp.down_proj.weight", {H, c.intermediate_size});
    l.qkv = pack({{&l.q_proj, q}, {&l.k_proj, k}, {&l.v_proj, v}}, {&l.q_bias, &l.k_bias, &l.v_bias});
    l.o = pack({{&l.o_proj, o}}, {});
    l.gate_up = pack({{&l.gate_proj, gate}, {&l.up_proj, up}}, {});
    l.down = pack({{&l.down_proj, down}}, {});
  }
  w_.final_norm = load("model.norm.weight", {H});
  if (c.tie_word_embeddings && embed.gguf_blocks) {
    w_.lm_head_packed = w_.embed_packed;  // one table for both
    bytes_per_token_ += w_.lm_head_packed.weight_bytes();
  } else if (c.tie_word_embeddings) {
    w_.lm_head = w_.embed_tokens;
    bytes_per_token_ += w_.lm_head.numel() * elem;
    w_.lm_head_packed = pack({{&w_.lm_head, &embed}}, {});
  } else {
    const TensorView* head = matrix(w_.lm_head, "lm_head.weight", {c.vocab_size, H});
    w_.lm_head_packed = pack({{&w_.lm_head, head}}, {});
  }

  // RoPE tables in float32, as HF computes them.
  at::Tensor exponent = at::arange(0, hd, 2, at::kLong).to(at::kFloat) / static_cast<double>(hd);
  at::Tensor inv_freq = 1.0 / at::pow(c.rope_theta, exponent);
  if (c.rope_scaling.kind == RopeScalingKind::llama3) inv_freq = llama3_scale(inv_freq, c.rope_scaling);
  if (!c.rope_freq_factors.empty())
    inv_freq = inv_freq / at::tensor(at::ArrayRef<float>(c.rope_freq_factors), at::kFloat).to(inv_freq.scalar_type());
  at::Tensor positions = at::arange(max_context, at::kLong).to(at::kFloat);
  at::Tensor freqs = at::outer(positions, inv_freq);  // [max_context, hd/2]
  rope_cos_ = freqs.cos();
  rope_sin_ = freqs.sin();
}

std::shared_ptr<KvSegment> Transformer::new_segment(int64_t capacity) const {
  auto seg = std::make_shared<KvSegment>();
  const auto opts = at::TensorOptions().dtype(dtype_);
  // Uninitialised: pages are touched only as positions are written.
  seg->k = at::empty({config_.num_hidden_layers, config_.num_key_value_heads, capacity, config_.head_dim}, opts);
  seg->v = at::empty_like(seg->k);
  seg->capacity = capacity;
  return seg;
}

std::vector<std::shared_ptr<KvSegment>> Transformer::new_pooled_segments(int64_t count, int64_t capacity) const {
  auto pool = std::make_shared<KvPool>();
  const auto opts = at::TensorOptions().dtype(dtype_);
  // Uninitialised: pages are touched only as positions are written.
  pool->k = at::empty({config_.num_hidden_layers, count, config_.num_key_value_heads, capacity, config_.head_dim}, opts);
  pool->v = at::empty_like(pool->k);
  pool->finite_upto.assign(static_cast<size_t>(count), 0);
  std::vector<std::shared_ptr<KvSegment>> out;
  for (int64_t i = 0; i < count; ++i) {
    auto seg = std::make_shared<KvSegment>();
    seg->k = pool->k.select(1, i);
    seg->v = pool->v.select(1, i);
    seg->capacity = capacity;
    seg->pool = pool;
    seg->slot = i;
    out.push_back(std::move(seg));
  }
  return out;
}

bool Transformer::use_packed(int64_t rows) const noexcept {
  switch (matrices_) {
    case MatrixFormat::plain: return false;
    case MatrixFormat::bf16: return rows <= 16;
    case MatrixFormat::int8:
    case MatrixFormat::q4: return true;
  }
  return false;
}

at::Tensor Transformer::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  return weight * normed.to(x.scalar_type());
}

// q: [n, heads, hd], k/v: [n, kv_heads, hd] for this item's new tokens (RoPE
// applied). Writes k/v into the item's cache, attends over the whole cache,
// returns [n, heads*hd].
//
// The cache is a chain of segments (shared prefixes, then the sequence's
// own); scores are computed per segment and concatenated, so K and V are
// never copied. As HF's eager attention: products in the compute dtype,
// softmax in float32.
at::Tensor Transformer::attention(const ForwardItem& item, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& v, int64_t layer) const {
  KvCache& cache = *item.cache;
  const int64_t n = item.count;
  const int64_t kvh = config_.num_key_value_heads, hd = config_.head_dim;
  const int64_t group = config_.num_attention_heads / kvh;

  cache.own->k[layer].narrow(1, cache.own_length, n).copy_(k.permute({1, 0, 2}));
  cache.own->v[layer].narrow(1, cache.own_length, n).copy_(v.permute({1, 0, 2}));

  std::vector<at::Tensor> ks, vs;  // [kvh, len, hd] views into the segments
  for (const auto& s : cache.shared) {
    ks.push_back(s.segment->k[layer].narrow(1, 0, s.length));
    vs.push_back(s.segment->v[layer].narrow(1, 0, s.length));
  }
  ks.push_back(cache.own->k[layer].narrow(1, 0, cache.own_length + n));
  vs.push_back(cache.own->v[layer].narrow(1, 0, cache.own_length + n));

  // Query heads grouped under their KV head: [kvh, group*n, hd].
  at::Tensor qg = q.view({n, kvh, group, hd}).permute({1, 2, 0, 3}).reshape({kvh, group * n, hd});
  std::vector<at::Tensor> parts;
  std::vector<int64_t> lengths;
  for (const auto& kseg : ks) {
    parts.push_back(at::bmm(qg, kseg.transpose(1, 2)));
    lengths.push_back(kseg.size(1));
  }
  at::Tensor scores = (parts.size() == 1 ? parts[0] : at::cat(parts, -1)).to(at::kFloat);
  const int64_t L = scores.size(-1);
  scores.mul_(1.0 / std::sqrt(double(hd)));
  if (n > 1) {
    // Query i sits at position L-n+i and may see keys 0..L-n+i.
    at::Tensor future = at::ones({n, L}, at::kBool).triu(L - n + 1);
    scores.view({kvh, group, n, L}).masked_fill_(future, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = at::softmax(scores, -1).to(dtype_);
  at::Tensor out;
  int64_t offset = 0;
  for (size_t i = 0; i < vs.size(); ++i) {
    at::Tensor part = at::bmm(probs.narrow(-1, offset, lengths[i]), vs[i]);
    out = out.defined() ? out.add_(part) : part;
    offset += lengths[i];
  }
  // [kvh, group*n, hd] -> [n, heads*hd]
  return out.view({kvh, group, n, hd}).permute({2, 0, 1, 3}).reshape({n, kvh * group * hd});
}

// The batched form of attention() for decode: every item adds one token,
// its own KV is a slot of `pool`, and all share the same prefix segments.
// Slots s0..s0+R-1 are computed together (rows of slots not in the group are
// computed and dropped); each slot's own positions beyond its length are
// masked. Same arithmetic as attention(): products in the compute dtype,
// softmax in float32.
at::Tensor Transformer::pooled_attention(std::span<const ForwardItem* const> items, const at::Tensor& q,
                                         const at::Tensor& k, const at::Tensor& v, int64_t layer) const {
  using at::indexing::Slice;
  const int64_t B = static_cast<int64_t>(items.size());
  const int64_t kvh = config_.num_key_value_heads, hd = config_.head_dim;
  const int64_t group = config_.num_attention_heads / kvh;
  const KvCache& first = *items[0]->cache;
  const KvPool& pool = *first.own->pool;

  std::vector<int64_t> slots, lengths;
  for (const auto* item : items) {
    slots.push_back(item->cache->own->slot);
    lengths.push_back(item->cache->own_length);
  }
  const int64_t s0 = *std::min_element(slots.begin(), slots.end());
  const int64_t R = *std::max_element(slots.begin(), slots.end()) - s0 + 1;
  const int64_t Lown = *std::max_element(lengths.begin(), lengths.end()) + 1;
  at::Tensor slot_t = at::tensor(slots, at::kLong);
  at::Tensor local_t = slot_t - s0;

  // Positions an item reads but does not own (its length+1 .. Lown) are
  // masked, yet multiplied by 0: make them finite once, in every layer, before
  // the first layer reads them (they are overwritten as the sequence grows).
  if (layer == 0) {
    auto& finite = const_cast<KvPool&>(pool).finite_upto;
    for (size_t i = 0; i < items.size(); ++i) {
      const int64_t from = std::max(finite[slots[i]], lengths[i] + 1);
      if (from < Lown) {
        pool.k.select(1, slots[i]).narrow(2, from, Lown - from).zero_();
        pool.v.select(1, slots[i]).narrow(2, from, Lown - from).zero_();
      }
      finite[slots[i]] = std::max(finite[slots[i]], Lown);
    }
  }

  // Write the new K/V at each item's own position.
  at::Tensor pool_k = pool.k[layer], pool_v = pool.v[layer];  // [slots, kvh, capacity, hd]
  at::Tensor pos_t = at::tensor(lengths, at::kLong);
  pool_k.index_put_({slot_t, Slice(), pos_t}, k);
  pool_v.index_put_({slot_t, Slice(), pos_t}, v);

  // Queries of the slot range [R, kvh, group, hd]; slots not in the group stay zero.
  at::Tensor qr = at::zeros({R, kvh, group, hd}, q.options());
  qr.index_copy_(0, local_t, q.view({B, kvh, group, hd}));

  std::vector<at::Tensor> parts;  // scores [R, kvh, group, len] per segment
  std::vector<int64_t> seg_lengths;
  at::Tensor q_by_head = qr.permute({1, 0, 2, 3}).reshape({kvh, R * group, hd});
  for (const auto& s : first.shared) {
    at::Tensor ks = s.segment->k[layer].narrow(1, 0, s.length);  // [kvh, len, hd]
    parts.push_back(at::bmm(q_by_head, ks.transpose(1, 2)).view({kvh, R, group, s.length}).permute({1, 0, 2, 3}));
    seg_lengths.push_back(s.length);
  }
  at::Tensor k_own = pool_k.narrow(0, s0, R).narrow(2, 0, Lown).reshape({R * kvh, Lown, hd});
  at::Tensor v_own = pool_v.narrow(0, s0, R).narrow(2, 0, Lown).reshape({R * kvh, Lown, hd});
  parts.push_back(at::bmm(qr.view({R * kvh, group, hd}), k_own.transpose(1, 2)).view({R, kvh, group, Lown}));
  at::Tensor scores = at::cat(parts, -1).to(at::kFloat);
  const int64_t L = scores.size(-1), prefix = L - Lown;
  scores.mul_(1.0 / std::sqrt(double(hd)));

  // Own positions past a slot's new length are not its keys.
  at::Tensor own_len = at::zeros({R}, at::kLong).index_copy_(0, local_t, pos_t);
  at::Tensor beyond = at::arange(Lown, at::kLong).unsqueeze(0) > own_len.unsqueeze(1);  // [R, Lown]
  at::Tensor mask = at::cat({at::zeros({R, prefix}, at::kBool), beyond}, 1).view({R, 1, 1, L});
  scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1).to(dtype_);

  at::Tensor out = at::bmm(probs.narrow(-1, prefix, Lown).reshape({R * kvh, group, Lown}), v_own).view({R, kvh, group, hd});
  int64_t offset = 0;
  for (size_t i = 0; i < first.shared.size(); ++i) {
    const auto& s = first.shared[i];
    at::Tensor vs = s.segment->v[layer].narrow(1, 0, s.length);
    at::Tensor p = probs.narrow(-1, offset, seg_lengths[i]).permute({1, 0, 2, 3}).reshape({kvh, R * group, seg_lengths[i]});
    out.add_(at::bmm(p, vs).view({kvh, R, group, hd}).permute({1, 0, 2, 3}));
    offset += seg_lengths[i];
  }
  return out.index_select(0, local_t).reshape({B, kvh * group * hd});
}

at::Tensor Transformer::forward(std::span<const ForwardItem> items) const {
  const auto& c = config_;
  const int64_t heads = c.num_attention_heads, kvh = c.num_key_value_heads, hd = c.head_dim;

  std::vector<int64_t> ids, positions;
  for (const auto& item : items) {
    const int64_t start = item.cache->length();
    for (int64_t i = 0; i < item.count; ++i) {
      ids.push_back(item.tokens[i]);
      positions.push_back(start + i);
    }
  }
  const int64_t T = static_cast<int64_t>(ids.size());
  const bool packed = use_packed(T);
  at::Tensor id_tensor = at::tensor(ids, at::kLong);
  at::Tensor pos_tensor = at::tensor(positions, at::kLong);
  at::Tensor cos = rope_cos_.index_select(0, pos_tensor).to(dtype_);
  at::Tensor sin = rope_sin_.index_select(0, pos_tensor).to(dtype_);

  // A few bf16 rows: the small ops as fused loops (kernels/decode_ops.hpp),
  // and each layer's last residual add fused into the next layer's norm.
  const bool fused = packed && T <= 16 && dtype_ == at::kBFloat16;
  // Decode rows only (one new token per item): attention by our kernel.
  const kernels::DecodeAttentionShape attention_shape{heads, kvh, hd, static_cast<float>(1.0 / std::sqrt(double(hd)))};
  const bool kernel_attends = fused && T == static_cast<int64_t>(items.size()) &&
                              kernels::decode_attention_available(attention_shape);

  // Items that attend together (ATen's path): decode items (one token) whose
  // own KV segments are slots of one pool and whose shared prefixes are the
  // same go as one group; every other item is a group of its own. The kernel
  // takes all items in one call per layer and needs no groups.
  std::vector<int64_t> rows;  // first row of each item
  std::vector<std::vector<size_t>> groups;
  {
    int64_t row = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      rows.push_back(row);
      row += items[i].count;
      if (kernel_attends) continue;
      const KvCache& c = *items[i].cache;
      auto same_group = [&](const std::vector<size_t>& g) {
        const ForwardItem& other = items[g[0]];
        const KvCache& o = *other.cache;
        if (items[i].count != 1 || other.count != 1 || !c.own->pool || c.own->pool != o.own->pool) return false;
        if (c.shared.size() != o.shared.size()) return false;
        for (size_t s = 0; s < c.shared.size(); ++s)
          if (c.shared[s].segment != o.shared[s].segment || c.shared[s].length != o.shared[s].length) return false;
        return true;
      };
      auto it = std::find_if(groups.begin(), groups.end(), same_group);
      if (it != groups.end()) it->push_back(i);
      else groups.push_back({i});
    }
  }

  at::Tensor x = w_.embed_packed.defined() ? w_.embed_packed.unpacked_rows(id_tensor).to(dtype_)
                                            : w_.embed_tokens.index_select(0, id_tensor);  // [T, H]
  for (size_t i = 0; i < items.size(); ++i)
    for (const auto& inj : items[i].injections) {
      const at::Tensor& e = inj.embeddings->impl().rows;
      x.narrow(0, rows[i] + inj.offset, e.size(0)).copy_(e);
    }
  const double eps = c.rms_norm_eps;
  at::Tensor residual;  // fused: still to be added to x
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const LayerWeights& l = w_.layers[layer];
    at::Tensor h;
    if (!fused) h = rms_norm(x, l.input_norm);
    else if (!residual.defined()) h = kernels::rms_norm(x, l.input_norm, eps);
    else std::tie(x, h) = kernels::add_rms_norm(x, residual, l.input_norm, eps);
    at::Tensor q, k, v;
    if (packed) {
      at::Tensor qkv = l.qkv(h, dtype_);
      q = qkv.narrow(1, 0, heads * hd).view({T, heads, hd});
      k = qkv.narrow(1, heads * hd, kvh * hd).view({T, kvh, hd});
      v = qkv.narrow(1, (heads + kvh) * hd, kvh * hd).view({T, kvh, hd});
    } else {
      q = project(h, l.q_proj, l.q_bias).view({T, heads, hd});
      k = project(h, l.k_proj, l.k_bias).view({T, kvh, hd});
      v = project(h, l.v_proj, l.v_bias).view({T, kvh, hd});
    }
    if (fused) {
      q = kernels::norm_rope(q, l.q_norm, eps, cos, sin);
      k = kernels::norm_rope(k, l.k_norm, eps, cos, sin);
    } else {
      if (c.qk_norm) {
        q = rms_norm(q, l.q_norm);
        k = rms_norm(k, l.k_norm);
      }
      q = apply_rope(q, cos, sin);
      k = apply_rope(k, cos, sin);
    }

    std::vector<at::Tensor> outs;
    if (kernel_attends) outs.push_back(kernel_attention(items, q, k, v, layer, attention_shape));
    else outs.resize(items.size());
    for (const auto& group : groups) {
      if (group.size() == 1) {
        const size_t i = group[0];
        outs[i] = attention(items[i], q.narrow(0, rows[i], items[i].count), k.narrow(0, rows[i], items[i].count),
                            v.narrow(0, rows[i], items[i].count), layer);
        continue;
      }
      std::vector<const ForwardItem*> members;
      for (size_t i : group) members.push_back(&items[i]);
      // Decode items have one row each, and their row is their index in rows[].
      at::Tensor row_index = at::tensor([&] {
        std::vector<int64_t> r;
        for (size_t i : group) r.push_back(rows[i]);
        return r;
      }(), at::kLong);
      at::Tensor out = pooled_attention(members, q.index_select(0, row_index), k.index_select(0, row_index),
                                        v.index_select(0, row_index), layer);
      for (size_t j = 0; j < group.size(); ++j) outs[group[j]] = out.narrow(0, static_cast<int64_t>(j), 1);
    }
    at::Tensor attn = outs.size() == 1 ? outs[0] : at::cat(outs, 0);
    at::Tensor attn_out = packed ? l.o(attn, dtype_) : project(attn, l.o_proj);
    if (fused) {
      std::tie(x, h) = kernels::add_rms_norm(x, attn_out, l.post_attention_norm, eps);
    } else {
      x = x + attn_out;
      h = rms_norm(x, l.post_attention_norm);
    }
    if (packed) {
      const int64_t I = c.intermediate_size;
      at::Tensor gate_up = l.gate_up(h, dtype_);
      at::Tensor act = fused ? kernels::silu_mul(gate_up) : at::silu(gate_up.narrow(1, 0, I)) * gate_up.narrow(1, I, I);
      residual = l.down(act, dtype_);
      if (!fused) x = x + residual;
    } else {
      x = x + project(at::silu(project(h, l.gate_proj)) * project(h, l.up_proj), l.down_proj);
    }
  }

  if (fused) x = x + residual;
  for (const auto& item : items) item.cache->own_length += item.count;

  // Only the rows whose logits are wanted go through the final norm and head.
  std::vector<int64_t> wanted;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].all_logits) {
      for (int64_t j = 0; j < items[i].count; ++j) wanted.push_back(rows[i] + j);
    } else {
      wanted.push_back(rows[i] + items[i].count - 1);
    }
  }
  at::Tensor selected = static_cast<int64_t>(wanted.size()) == T ? x : x.index_select(0, at::tensor(wanted, at::kLong));
  at::Tensor normed = rms_norm(selected, w_.final_norm);
  if (use_packed(normed.size(0))) return w_.lm_head_packed(normed, at::kFloat);
  return project(normed, w_.lm_head).to(at::kFloat).contiguous();
}

}  // namespace musespark::detail
