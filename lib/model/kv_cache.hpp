// Append-only KV storage with shared prefixes.
//
// A KvSegment is one preallocated block [layers, kv_heads, capacity, head_dim]
// for K and for V. A KvCache is a chain: views of segments it shares with the
// sequences it was forked from (each view covers a prefix of that segment
// that will never change, because KV is append-only), then its own segment.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace musespark::detail {

struct KvSegment {
  at::Tensor k, v;  // [layers, kv_heads, capacity, head_dim]
  int64_t capacity = 0;
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

  // A cache continuing from this one: shares everything this one holds now.
  KvCache fork(std::shared_ptr<KvSegment> fresh_segment) const {
    KvCache child;
    child.shared = shared;
    if (own && own_length > 0) child.shared.push_back({own, own_length});
    child.own = std::move(fresh_segment);
    return child;
  }
};

}  // namespace musespark::detail
