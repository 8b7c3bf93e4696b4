#include "musespark/runtime.hpp"

#include <ATen/ATen.h>

#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "model/model_impl.hpp"
#include "musespark/error.hpp"

namespace musespark {

Embeddings::Embeddings(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Embeddings::~Embeddings() = default;
int64_t Embeddings::rows() const noexcept { return impl_->rows.size(0); }
int64_t Embeddings::width() const noexcept { return impl_->rows.size(1); }

std::shared_ptr<const Embeddings> Embeddings::from_floats(std::span<const float> data, int64_t rows, int64_t width) {
  if (rows <= 0 || width <= 0 || static_cast<int64_t>(data.size()) != rows * width)
    throw Error(ErrorKind::invalid_argument, "", "embeddings",
                fmt::format("{} floats do not make {} rows of {}", data.size(), rows, width));
  auto impl = std::make_unique<Embeddings::Impl>();
  impl->rows = at::from_blob(const_cast<float*>(data.data()), {rows, width}, at::kFloat).clone();
  return std::make_shared<const Embeddings>(std::move(impl));
}

struct Runtime::Impl {
  struct Sequence {
    detail::KvCache cache;
    std::vector<int32_t> tokens;
    std::vector<float> logits;
  };

  std::shared_ptr<const Model> model;
  const detail::Transformer* transformer = nullptr;
  std::unordered_map<SequenceId, Sequence> sequences;
  SequenceId next_id = 1;

  Sequence& get(SequenceId id) {
    auto it = sequences.find(id);
    if (it == sequences.end())
      throw Error(ErrorKind::invalid_argument, "", "sequence", fmt::format("no sequence with id {}", id));
    return it->second;
  }

  void check_injections(std::span<const int32_t> tokens, std::span<const Injection> injections) const {
    const int64_t hidden = model->info().hidden_size;
    for (const auto& inj : injections) {
      if (!inj.embeddings) throw Error(ErrorKind::invalid_argument, "", "injections", "null embeddings");
      if (inj.embeddings->width() != hidden)
        throw Error(ErrorKind::invalid_argument, "", "injections",
                    fmt::format("embeddings of width {} for a model of hidden size {}", inj.embeddings->width(), hidden));
      if (inj.offset < 0 || inj.offset + inj.embeddings->rows() > static_cast<int64_t>(tokens.size()))
        throw Error(ErrorKind::invalid_argument, "", "injections",
                    fmt::format("{} rows at offset {} do not fit in {} tokens", inj.embeddings->rows(), inj.offset,
                                tokens.size()));
    }
  }

  void check_append(SequenceId id, const Sequence& seq, std::span<const int32_t> tokens) const {
    if (tokens.empty())
      throw Error(ErrorKind::invalid_argument, "", "tokens", fmt::format("sequence {}: no tokens to append", id));
    const int64_t vocab = model->info().vocab_size;
    for (int32_t t : tokens)
      if (t < 0 || t >= vocab)
        throw Error(ErrorKind::invalid_argument, "", "tokens",
                    fmt::format("token id {} is outside the vocabulary [0, {})", t, vocab));
    const int64_t wanted = seq.cache.length() + static_cast<int64_t>(tokens.size());
    if (wanted > seq.cache.capacity())
      throw Error(ErrorKind::context_overflow, "", "tokens",
                  fmt::format("sequence {} would hold {} tokens, more than its capacity of {} "
                              "(the model's max_context is {})",
                              id, wanted, seq.cache.capacity(), model->info().max_context));
  }

  // The capacity of a fork sharing `prefix` tokens: `extra` (0: up to max_context).
  int64_t fork_capacity(const Sequence& parent, int64_t prefix, int64_t extra) const {
    const int64_t room = model->info().max_context - prefix;
    if (extra < 0 || extra > room)
      throw Error(ErrorKind::invalid_argument, "", "extra_capacity",
                  fmt::format("must be between 0 and {} (max_context minus the {} tokens shared), got {}", room,
                              prefix, extra));
    return extra == 0 ? room : extra;
  }

  SequenceId add_fork(const Sequence& parent, int64_t prefix, std::shared_ptr<detail::KvSegment> segment) {
    Sequence child;
    child.cache = parent.cache.fork(std::move(segment), prefix);
    child.tokens.assign(parent.tokens.begin(), parent.tokens.begin() + prefix);
    if (prefix == parent.cache.length()) child.logits = parent.logits;
    const SequenceId id = next_id++;
    sequences.emplace(id, std::move(child));
    return id;
  }

  void store_logits(Sequence& seq, const at::Tensor& logits, int64_t row) {
    const int64_t vocab = logits.size(1);
    const float* p = logits.data_ptr<float>() + row * vocab;
    seq.logits.assign(p, p + vocab);
  }
};

Runtime::Runtime(std::shared_ptr<const Model> model) : impl_(std::make_unique<Impl>()) {
  if (!model) throw Error(ErrorKind::invalid_argument, "", "model", "is null");
  impl_->transformer = model->impl_->transformer.get();
  impl_->model = std::move(model);
}
Runtime::~Runtime() = default;
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;

const Model& Runtime::model() const noexcept { return *impl_->model; }

SequenceId Runtime::create(int64_t capacity) {
  const int64_t max_context = impl_->model->info().max_context;
  if (capacity < 0 || capacity > max_context)
    throw Error(ErrorKind::invalid_argument, "", "capacity",
                fmt::format("must be between 0 and max_context ({}), got {}", max_context, capacity));
  Impl::Sequence seq;
  seq.cache.own = impl_->transformer->new_segment(capacity == 0 ? max_context : capacity);
  const SequenceId id = impl_->next_id++;
  impl_->sequences.emplace(id, std::move(seq));
  return id;
}

SequenceId Runtime::fork(SequenceId parent_id, int64_t extra_capacity, int64_t prefix_length) {
  const Impl::Sequence& parent = impl_->get(parent_id);
  const int64_t parent_length = parent.cache.length();
  if (prefix_length > parent_length)
    throw Error(ErrorKind::invalid_argument, "", "prefix_length",
                fmt::format("{} is longer than the parent's {} tokens", prefix_length, parent_length));
  const int64_t prefix = prefix_length < 0 ? parent_length : prefix_length;
  const int64_t capacity = impl_->fork_capacity(parent, prefix, extra_capacity);
  return impl_->add_fork(parent, prefix, impl_->transformer->new_segment(capacity));
}

std::vector<SequenceId> Runtime::fork_many(SequenceId parent_id, int32_t count, int64_t extra_capacity) {
  const Impl::Sequence& parent = impl_->get(parent_id);
  if (count < 1) throw Error(ErrorKind::invalid_argument, "", "count", fmt::format("must be at least 1, got {}", count));
  const int64_t prefix = parent.cache.length();
  const int64_t capacity = impl_->fork_capacity(parent, prefix, extra_capacity);
  std::vector<SequenceId> ids;
  for (auto& segment : impl_->transformer->new_pooled_segments(count, capacity))
    ids.push_back(impl_->add_fork(parent, prefix, std::move(segment)));
  return ids;
}

void Runtime::release(SequenceId seq) { impl_->sequences.erase(seq); }

void Runtime::prefill(SequenceId id, std::span<const int32_t> tokens, std::vector<float>* all_logits,
                      std::span<const Injection> injections) {
  Impl::Sequence& seq = impl_->get(id);
  impl_->check_append(id, seq, tokens);
  impl_->check_injections(tokens, injections);
  detail::ForwardItem item{tokens.data(), static_cast<int64_t>(tokens.size()), &seq.cache, all_logits != nullptr,
                           injections};
  at::Tensor logits = impl_->transformer->forward({&item, 1});
  seq.tokens.insert(seq.tokens.end(), tokens.begin(), tokens.end());
  impl_->store_logits(seq, logits, logits.size(0) - 1);
  if (all_logits) all_logits->assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
}

void Runtime::decode(std::span<const SequenceId> ids, std::span<const int32_t> tokens) {
  if (ids.size() != tokens.size())
    throw Error(ErrorKind::invalid_argument, "", "tokens",
                fmt::format("{} sequences but {} tokens", ids.size(), tokens.size()));
  std::vector<std::span<const int32_t>> runs;
  runs.reserve(tokens.size());
  for (const int32_t& t : tokens) runs.emplace_back(&t, 1);
  extend(ids, runs);
}

void Runtime::extend(std::span<const SequenceId> ids, std::span<const std::span<const int32_t>> tokens) {
  extend(ids, tokens, {});
}

void Runtime::extend(std::span<const SequenceId> ids, std::span<const std::span<const int32_t>> tokens,
                     std::span<const std::span<const Injection>> injections) {
  if (!injections.empty() && injections.size() != ids.size())
    throw Error(ErrorKind::invalid_argument, "", "injections",
                fmt::format("{} sequences but {} lists of injections", ids.size(), injections.size()));
  if (ids.size() != tokens.size())
    throw Error(ErrorKind::invalid_argument, "", "tokens",
                fmt::format("{} sequences but {} runs of tokens", ids.size(), tokens.size()));
  if (ids.empty()) return;
  std::unordered_set<SequenceId> seen;
  std::vector<Impl::Sequence*> seqs;
  std::vector<detail::ForwardItem> items;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!seen.insert(ids[i]).second)
      throw Error(ErrorKind::invalid_argument, "", "sequences",
                  fmt::format("sequence {} appears twice in one step", ids[i]));
    Impl::Sequence& seq = impl_->get(ids[i]);
    impl_->check_append(ids[i], seq, tokens[i]);
    const std::span<const Injection> inj = injections.empty() ? std::span<const Injection>() : injections[i];
    impl_->check_injections(tokens[i], inj);
    seqs.push_back(&seq);
    items.push_back({tokens[i].data(), static_cast<int64_t>(tokens[i].size()), &seq.cache, false, inj});
  }
  at::Tensor logits = impl_->transformer->forward(items);
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i]->tokens.insert(seqs[i]->tokens.end(), tokens[i].begin(), tokens[i].end());
    impl_->store_logits(*seqs[i], logits, static_cast<int64_t>(i));
  }
}

std::span<const float> Runtime::logits(SequenceId id) const {
  auto& seq = impl_->get(id);
  if (seq.logits.empty())
    throw Error(ErrorKind::invalid_argument, "", "sequence",
                fmt::format("sequence {} has no logits yet (prefill it first)", id));
  return seq.logits;
}

std::span<const int32_t> Runtime::tokens(SequenceId id) const { return impl_->get(id).tokens; }
int64_t Runtime::length(SequenceId id) const { return impl_->get(id).cache.length(); }
int64_t Runtime::capacity(SequenceId id) const { return impl_->get(id).cache.capacity(); }
size_t Runtime::live_sequences() const noexcept { return impl_->sequences.size(); }

}  // namespace musespark
