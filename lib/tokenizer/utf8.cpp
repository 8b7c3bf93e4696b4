#include "tokenizer/utf8.hpp"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "musespark/error.hpp"

namespace musespark::tokenizer {
namespace {

// The valid range of the second byte after lead byte `lead` (Unicode table 3-7),
// or {1, 0} when `lead` cannot start a multi-byte sequence.
struct Range {
  unsigned char lo, hi;
};
Range second_byte_range(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {0x80, 0xBF};
  if (lead == 0xE0) return {0xA0, 0xBF};
  if (lead >= 0xE1 && lead <= 0xEC) return {0x80, 0xBF};
  if (lead == 0xED) return {0x80, 0x9F};
  if (lead >= 0xEE && lead <= 0xEF) return {0x80, 0xBF};
  if (lead == 0xF0) return {0x90, 0xBF};
  if (lead >= 0xF1 && lead <= 0xF3) return {0x80, 0xBF};
  if (lead == 0xF4) return {0x80, 0x8F};
  return {1, 0};
}
size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Number of bytes starting at `pos` forming one valid sequence (> 0), or
// minus the length of the maximal invalid subpart (< 0), or 0 when the
// bytes are a valid prefix cut short by the end of the input.
ptrdiff_t classify(std::string_view s, size_t pos) {
  auto lead = static_cast<unsigned char>(s[pos]);
  if (lead < 0x80) return 1;
  Range r = second_byte_range(lead);
  if (r.lo > r.hi) return -1;
  size_t need = sequence_length(lead);
  for (size_t i = 1; i < need; ++i) {
    if (pos + i >= s.size()) return 0;
    auto b = static_cast<unsigned char>(s[pos + i]);
    bool ok = i == 1 ? (b >= r.lo && b <= r.hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -static_cast<ptrdiff_t>(i);
  }
  return static_cast<ptrdiff_t>(need);
}

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    // Fast path over ASCII.
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    ptrdiff_t n = classify(text, pos);
    if (n <= 0) return pos;
    pos += static_cast<size_t>(n);
  }
  return std::nullopt;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    ptrdiff_t n = classify(bytes, pos);
    if (n > 0) {
      out.append(bytes.substr(pos, static_cast<size_t>(n)));
      pos += static_cast<size_t>(n);
    } else {
      out += "\xEF\xBF\xBD";
      pos += n < 0 ? static_cast<size_t>(-n) : bytes.size() - pos;  // cut short: the rest
    }
  }
  return out;
}

size_t incomplete_utf8_tail(std::string_view bytes) {
  size_t start = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t pos = start; pos < bytes.size(); ++pos) {
    auto b = static_cast<unsigned char>(bytes[pos]);
    if (b >= 0x80 && b <= 0xBF) continue;  // continuation byte: not a start
    if (classify(bytes, pos) == 0) return bytes.size() - pos;
  }
  return 0;
}

const ByteLevelAlphabet& byte_level_alphabet() {
  static const ByteLevelAlphabet alphabet = [] {
    ByteLevelAlphabet a;
    a.byte_of_char.fill(-1);
    char32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = printable ? static_cast<char32_t>(b) : next_extra++;
      a.char_of_byte[b] = c;
      a.byte_of_char[c] = static_cast<int16_t>(b);
    }
    return a;
  }();
  return alphabet;
}

char32_t next_code_point(std::string_view text, size_t& pos) {
  auto lead = static_cast<unsigned char>(text[pos]);
  size_t n = sequence_length(lead);
  if (n == 1 || pos + n > text.size()) {
    ++pos;
    return lead;
  }
  char32_t cp = lead & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  pos += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::optional<std::string> byte_level_to_bytes(std::string_view spelled) {
  const auto& a = byte_level_alphabet();
  std::string out;
  out.reserve(spelled.size());
  size_t pos = 0;
  while (pos < spelled.size()) {
    char32_t cp = next_code_point(spelled, pos);
    if (cp >= a.byte_of_char.size() || a.byte_of_char[cp] < 0) return std::nullopt;
    out += static_cast<char>(a.byte_of_char[cp]);
  }
  return out;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& a = byte_level_alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) append_utf8(out, a.char_of_byte[static_cast<unsigned char>(b)]);
  return out;
}

std::string normalize(std::string_view text, NormalForm form) {
  // Every code point below U+0300 is stable under all four forms except for
  // compatibility mappings (NFKC/NFKD change e.g. U+00A0), so NFC/NFD of text
  // without a byte >= 0xCC (lead bytes of U+0300 and above) is the text.
  bool may_change = form == NormalForm::nfkc || form == NormalForm::nfkd;
  for (size_t i = 0; !may_change && i < text.size(); ++i)
    may_change = static_cast<unsigned char>(text[i]) >= 0xCC;
  if (!may_change) return std::string(text);

  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::nfc: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::nfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::nfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::nfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &out,
                                    static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  if (n < 0)
    throw Error(ErrorKind::internal, "", "", std::string("Unicode normalisation failed: ") + utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

}  // namespace musespark::tokenizer
