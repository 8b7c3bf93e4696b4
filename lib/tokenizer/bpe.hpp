// The BPE model of a byte-level tokenizer.json: vocab and ranked merges over
// raw bytes (the byte-level spelling is undone at load time).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace musespark::tokenizer {

class BpeModel {
 public:
  // Reads tokenizer.json's `model` object (type BPE). `file` names the file in
  // errors: Error{format} for a malformed vocab or merge, Error{unsupported}
  // for options we do not implement (dropout, byte_fallback, subword affixes).
  BpeModel(const nlohmann::json& model, const std::string& file);

  // Appends the ids of one pre-token (raw bytes). Thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  // Vocab entries as spelled in tokenizer.json (byte-level), by id; empty
  // where the vocab has no such id.
  const std::vector<std::string>& spelled() const { return spelled_; }
  // Raw bytes of each vocab id (spelled() decoded).
  const std::vector<std::string>& bytes() const { return bytes_; }
  const std::unordered_map<std::string, int32_t>& spelled_to_id() const { return spelled_to_id_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  std::vector<std::string> spelled_;
  std::vector<std::string> bytes_;
  std::unordered_map<std::string, int32_t> spelled_to_id_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;
  std::array<int32_t, 256> byte_id_{};  // id of each single byte, -1 if none
  std::unordered_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;

  // Results for short words, filled as they are met (like HF's cache).
  static constexpr size_t kCacheMaxWordBytes = 256;
  static constexpr size_t kCacheCapacity = 100000;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace musespark::tokenizer
