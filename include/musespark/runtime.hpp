// musespark — sequences, KV caches, prefill and batched decode.
//
// A Runtime holds sequences of one model. Each sequence owns a preallocated
// KV cache (memory is reserved at creation; pages are touched only as tokens
// arrive). Prefill and decode are separate steps: `prefill` appends a run of
// tokens to one sequence; `decode` appends one token to each of several
// sequences and runs them through the model as one batch, so that the
// weights are read once for all of them.
//
// `fork` makes a new sequence that continues from another one: the prefix's
// KV is shared (referenced, never copied or recomputed), which is how
// parallel agents reason from one prompt prefill. The KV of a sequence is
// append-only, so a parent may keep decoding after it has been forked.
//
// Thread safety: a Runtime is not thread-safe; use one per thread (they can
// share one Model). Its const methods (logits, tokens, length, capacity) may
// be called from several threads at once while no other method runs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "musespark/model.hpp"

namespace musespark {

using SequenceId = int64_t;

// Rows of input embeddings that stand in for the token embeddings at some
// positions of a sequence: an encoded image, whose rows replace its
// placeholder tokens. Immutable; share it freely (every agent that sees an
// image uses the same one).
class Embeddings {
 public:
  // Copies `data`, row-major [rows, width]. Error{invalid_argument} when the
  // sizes do not match or are not positive.
  static std::shared_ptr<const Embeddings> from_floats(std::span<const float> data, int64_t rows, int64_t width);
  int64_t rows() const noexcept;
  int64_t width() const noexcept;
  ~Embeddings();

  struct Impl;  // internal (holds the tensor)
  explicit Embeddings(std::unique_ptr<Impl> impl);
  const Impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Embeddings placed at `offset` within a run of appended tokens: rows
// offset .. offset+rows-1 of the run take them instead of their tokens'.
struct Injection {
  int64_t offset = 0;
  std::shared_ptr<const Embeddings> embeddings;
};

class Runtime {
 public:
  explicit Runtime(std::shared_ptr<const Model> model);
  ~Runtime();
  Runtime(Runtime&&) noexcept;
  Runtime& operator=(Runtime&&) noexcept;

  const Model& model() const noexcept;

  // A new, empty sequence that can hold `capacity` tokens (0: the model's
  // max_context). Error{invalid_argument} when capacity exceeds max_context.
  SequenceId create(int64_t capacity = 0);

  // A new sequence holding the same tokens as `parent`, sharing its KV.
  // It can grow by `extra_capacity` tokens (0: up to max_context).
  // With `prefix_length` >= 0 it holds only the parent's first
  // `prefix_length` tokens (still shared, not copied); such a fork has no
  // logits until something is appended to it.
  SequenceId fork(SequenceId parent, int64_t extra_capacity = 0, int64_t prefix_length = -1);

  // `count` forks of `parent` made together (parallel agents): their own KV
  // is one allocation, so that a decode step attends for all of them in a
  // few batched products instead of one set per sequence. Same arguments and
  // errors as fork (with the whole parent as prefix); count >= 1.
  std::vector<SequenceId> fork_many(SequenceId parent, int32_t count, int64_t extra_capacity = 0);

  // Frees a sequence's own KV (prefixes shared with forks stay alive while
  // any fork uses them). Unknown ids are ignored.
  void release(SequenceId seq);

  // Appends `tokens` (at least one) to `seq` and runs them through the model.
  // Afterwards logits(seq) are the next-token logits after the last one.
  // With `all_logits`, also returns the logits of every appended position,
  // row-major [tokens.size(), vocab_size]. Errors: unknown sequence or token
  // id out of range (invalid_argument), capacity exceeded (context_overflow).
  // `injections` replace the embeddings of some of the tokens (see
  // Injection). On error the sequence is unchanged.
  void prefill(SequenceId seq, std::span<const int32_t> tokens,
               std::vector<float>* all_logits = nullptr, std::span<const Injection> injections = {});

  // Appends tokens[i] to seqs[i] for every i, in one batched forward pass.
  // Sequences must be distinct. Same errors as prefill, checked before any
  // work is done.
  void decode(std::span<const SequenceId> seqs, std::span<const int32_t> tokens);

  // The general step: appends tokens[i] (one or more tokens) to seqs[i] for
  // every i, all in one forward pass. decode() is the one-token case; this
  // also lets some sequences take several tokens (e.g. injected text) in the
  // same batch as others decoding one. Same errors as decode.
  void extend(std::span<const SequenceId> seqs, std::span<const std::span<const int32_t>> tokens);
  // The same with injected embeddings for some runs: injections[i] belong to
  // tokens[i] (may be empty). Errors also for an injection that does not fit
  // its run or whose width is not the model's hidden size.
  void extend(std::span<const SequenceId> seqs, std::span<const std::span<const int32_t>> tokens,
              std::span<const std::span<const Injection>> injections);

  // Next-token logits (vocab_size floats) after the last appended token; the
  // span stays valid until the sequence is next changed or released.
  std::span<const float> logits(SequenceId seq) const;

  // The tokens a sequence holds (prompt and generated).
  std::span<const int32_t> tokens(SequenceId seq) const;
  int64_t length(SequenceId seq) const;
  int64_t capacity(SequenceId seq) const;
  size_t live_sequences() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace musespark
