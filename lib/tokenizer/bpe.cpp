#include "tokenizer/bpe.hpp"

#include <queue>

#include "musespark/error.hpp"
#include "tokenizer/utf8.hpp"

namespace musespark::tokenizer {

namespace {
[[noreturn]] void unsupported(const std::string& file, const std::string& field, const std::string& why) {
  throw Error(ErrorKind::unsupported, file, field, why);
}
[[noreturn]] void malformed(const std::string& file, const std::string& field, const std::string& why) {
  throw Error(ErrorKind::format, file, field, why);
}
}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, const std::string& file) {
  if (auto d = model.find("dropout"); d != model.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
    unsupported(file, "model.dropout", "BPE dropout is not supported");
  if (auto b = model.find("byte_fallback"); b != model.end() && b->is_boolean() && b->get<bool>())
    unsupported(file, "model.byte_fallback", "byte fallback is not supported (byte-level BPE only)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
      unsupported(file, std::string("model.") + key, "must be empty or null for byte-level BPE");
  }
  if (auto im = model.find("ignore_merges"); im != model.end() && !im->is_null()) {
    if (!im->is_boolean()) malformed(file, "model.ignore_merges", "expected a boolean");
    ignore_merges_ = im->get<bool>();
  }

  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) malformed(file, "model.vocab", "missing (an object of token -> id is required)");
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX)
      malformed(file, "model.vocab." + it.key(), "expected a non-negative integer id");
    max_id = std::max(max_id, static_cast<int32_t>(it->get<int64_t>()));
  }
  spelled_.resize(static_cast<size_t>(max_id + 1));
  bytes_.resize(static_cast<size_t>(max_id + 1));
  byte_id_.fill(-1);
  spelled_to_id_.reserve(vocab->size());
  bytes_to_id_.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    auto id = static_cast<int32_t>(it->get<int64_t>());
    const std::string& spelled = it.key();
    // A token outside the byte-level alphabet cannot come out of BPE over
    // bytes; keep its text as it is so that decode still shows it.
    std::string raw = byte_level_to_bytes(spelled).value_or(spelled);
    spelled_[id] = spelled;
    spelled_to_id_.emplace(spelled, id);
    if (raw.size() == 1) byte_id_[static_cast<unsigned char>(raw[0])] = id;
    bytes_to_id_.emplace(raw, id);
    bytes_[id] = std::move(raw);
  }

  auto merges = model.find("merges");
  if (merges == model.end() || merges->is_null()) return;  // a BPE without merges is allowed
  if (!merges->is_array()) malformed(file, "model.merges", "expected an array");
  merges_.reserve(merges->size());
  uint32_t rank = 0;
  for (const auto& m : *merges) {
    std::string field = "model.merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (m.is_string()) {
      const auto& s = m.get_ref<const std::string&>();
      auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        malformed(file, field, "expected \"left right\", got \"" + s + "\"");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      malformed(file, field, "expected a string \"left right\" or a pair of strings");
    }
    auto l = spelled_to_id_.find(left), r = spelled_to_id_.find(right), n = spelled_to_id_.find(left + right);
    if (l == spelled_to_id_.end() || r == spelled_to_id_.end() || n == spelled_to_id_.end())
      malformed(file, field, "merge \"" + left + " " + right + "\" uses a token that is not in model.vocab");
    // The first (lowest-rank) occurrence of a pair wins, as in HF.
    merges_.emplace(pair_key(l->second, r->second), Merge{rank, n->second});
    ++rank;
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  // Symbols form a linked list over the word; a min-queue holds candidate
  // merges ordered by (rank, position). Stale entries are skipped on pop.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (char c : word) {
    int32_t id = byte_id_[static_cast<unsigned char>(c)];
    if (id < 0) continue;  // no token for this byte and no unk: dropped, as HF does
    auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0) return;
    int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = bytes_to_id_.find(std::string(word)); it != bytes_to_id_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  if (word.size() == 1) {
    if (int32_t id = byte_id_[static_cast<unsigned char>(word[0])]; id >= 0) ids.push_back(id);
    return;
  }
  bool cacheable = word.size() <= kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::shared_lock lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = ids.size();
  merge_word(word, ids);
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity)
      cache_.emplace(std::move(key), std::vector<int32_t>(ids.begin() + static_cast<ptrdiff_t>(first), ids.end()));
  }
}

}  // namespace musespark::tokenizer
