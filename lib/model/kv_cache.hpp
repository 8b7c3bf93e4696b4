// Append-only KV storage with shared prefixes.
//
// A KvSegment is one preallocated block [layers, kv_heads, capacity, head_dim]
// for K and for V. A KvCache is a chain: views of segments it shares with the
// sequences it was forked from (each view covers a prefix of that segment
// that will never change, because KV is append-only), then its own segment.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace musespark::detail {

// Segments made together (the agents of a round) are slots of one pool,
// so that a decode step can attend for all of them in a few batched products.
struct KvPool {
  at::Tensor k, v;  // [layers, slots, kv_heads, capacity, head_dim]
  // The memory is uninitialised (pages are touched only as positions are
  // written), but batched decode reads every slot up to the longest one and
  // masks the rest: a masked position still multiplies its V by 0, and
  // garbage bits that make NaN or Inf would poison the row. Per slot, the
  // positions [0, finite_upto) hold finite values (written or zeroed).
  std::vector<int64_t> finite_upto;
};

struct KvSegment {
  at::Tensor k, v;  // [layers, kv_heads, capacity, head_dim]; a view into `pool` when pooled
  int64_t capacity = 0;
  std::shared_ptr<KvPool> pool;  // null for a segment of its own
  int64_t slot = 0;
};

struct SharedKv {
  std::shared_ptr<const KvSegment> segment;
  int64_t length = 0;  // the first `length` positions of `segment`
};

struct KvCache {
  std::vector<SharedKv> shared;        // oldest first
  std::shared_ptr<KvSegment> own;
  int64_t own_length = 0;

  int64_t shared_length() const {
    int64_t n = 0;
    for (const auto& s : shared) n += s.length;
    return n;
  }
  int64_t length() const { return shared_length() + own_length; }
  int64_t capacity() const { return shared_length() + (own ? own->capacity : 0); }

  // A cache continuing from the first `prefix` positions of this one
  // (prefix <= length()): shares them, and writes new positions to
  // `fresh_segment`.
  KvCache fork(std::shared_ptr<KvSegment> fresh_segment, int64_t prefix) const {
    KvCache child;
    for (const auto& s : shared) {
      if (prefix <= 0) break;
      child.shared.push_back({s.segment, std::min(s.length, prefix)});
      prefix -= s.length;
    }
    if (prefix > 0 && own) child.shared.push_back({own, std::min(own_length, prefix)});
    child.own = std::move(fresh_segment);
    return child;
  }
};

}  // namespace musespark::detail
