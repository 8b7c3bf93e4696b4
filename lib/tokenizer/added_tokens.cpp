#include "tokenizer/added_tokens.hpp"

#include <algorithm>

#include <utf8proc.h>

#include "tokenizer/utf8.hpp"

namespace musespark::tokenizer {

namespace {
bool is_word_char(char32_t cp) {
  if (cp == '_') return true;
  auto category = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_LO) ||
         (category >= UTF8PROC_CATEGORY_ND && category <= UTF8PROC_CATEGORY_NO) ||
         (category >= UTF8PROC_CATEGORY_MN && category <= UTF8PROC_CATEGORY_ME);
}
bool is_space(char32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}
// The code point that ends just before byte `pos` (valid UTF-8 assumed).
char32_t code_point_before(std::string_view text, size_t pos, size_t* start = nullptr) {
  size_t p = pos - 1;
  while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  if (start) *start = p;
  size_t q = p;
  return next_code_point(text, q);
}
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens) {
  for (const AddedToken* token : tokens) {
    if (token->content.empty()) continue;
    int32_t node = 0;
    for (char c : token->content) {
      auto byte = static_cast<unsigned char>(c);
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& children = nodes_[node].children;
        children.insert(std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0})),
                        {byte, next});
      }
      node = next;
    }
    if (!nodes_[node].token) nodes_[node].token = token;  // first listed wins on duplicates
    first_byte_[static_cast<unsigned char>(token->content[0])] = true;
  }
}

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
  const auto& children = nodes_[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0}));
  return it != children.end() && it->first == byte ? it->second : -1;
}

std::vector<AddedTokenMatcher::Piece> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Piece> pieces;
  size_t plain_start = 0;  // start of the plain text not yet emitted
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest token starting at pos.
    const AddedToken* found = nullptr;
    size_t found_end = 0;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = child(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      if (nodes_[node].token) {
        found = nodes_[node].token;
        found_end = i + 1;
      }
    }
    if (!found) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = found_end;
    if (found->single_word) {
      bool word_before = begin > 0 && is_word_char(code_point_before(text, begin));
      size_t after = end;
      bool word_after = end < text.size() && is_word_char(next_code_point(text, after));
      if (word_before || word_after) {
        ++pos;
        continue;
      }
    }
    if (found->lstrip) {
      size_t start = begin;
      while (begin > plain_start && is_space(code_point_before(text, begin, &start))) begin = start;
    }
    if (found->rstrip) {
      while (end < text.size()) {
        size_t next = end;
        if (!is_space(next_code_point(text, next))) break;
        end = next;
      }
    }
    if (begin > plain_start) pieces.push_back({text.substr(plain_start, begin - plain_start), nullptr});
    pieces.push_back({text.substr(begin, end - begin), found});
    plain_start = pos = end;
  }
  if (plain_start < text.size() || pieces.empty()) pieces.push_back({text.substr(plain_start), nullptr});
  return pieces;
}

}  // namespace musespark::tokenizer
