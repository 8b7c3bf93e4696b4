// Decoding a loaded model for the tests: logits one token at a time.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "musespark/runtime.hpp"

namespace test_support {

// Next-token logits after each of `tokens`, one decode step at a time (the
// path the decode kernels serve), as one flat vector of tokens x vocab.
inline std::vector<float> teacher_forced(const std::shared_ptr<const musespark::Model>& model,
                                         std::span<const int32_t> tokens) {
  musespark::Runtime rt(model);
  musespark::SequenceId s = rt.create();
  rt.prefill(s, tokens.first(1));
  std::vector<float> out(rt.logits(s).begin(), rt.logits(s).end());
  for (size_t i = 1; i < tokens.size(); ++i) {
    rt.decode(std::span(&s, 1), tokens.subspan(i, 1));
    out.insert(out.end(), rt.logits(s).begin(), rt.logits(s).end());
  }
  return out;
}

}  // namespace test_support
