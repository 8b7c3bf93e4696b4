// Added tokens (special or not) found in text before the model sees it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace musespark::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // matches only when not inside a word
  bool normalized = false;   // matched in normalised rather than raw text
};

// Splits text into runs of plain text and added tokens, finding at each
// point the leftmost, then longest, added token (as HF's Aho-Corasick
// leftmost-longest matcher does). Immutable after construction; thread-safe.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<const AddedToken*>& tokens);

  bool empty() const { return nodes_.size() <= 1; }

  struct Piece {
    std::string_view text;            // plain text when token == nullptr
    const AddedToken* token = nullptr;
  };
  // Pieces of `text` in order; plain pieces may be empty only if text is.
  std::vector<Piece> split(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    const AddedToken* token = nullptr;                         // a token ends here
  };
  int32_t child(int32_t node, unsigned char byte) const;
  std::vector<Node> nodes_{Node{}};
  std::vector<bool> first_byte_{std::vector<bool>(256, false)};
};

}  // namespace musespark::tokenizer
