// UTF-8 helpers of the tokenizer: validation, lossy decoding, the GPT-2
// byte-level alphabet, and Unicode normalisation (utf8proc).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace musespark::tokenizer {

// Byte offset of the first byte that does not start a valid UTF-8 sequence
// (overlong forms, surrogates and values above U+10FFFF are invalid), or
// std::nullopt when `text` is valid.
std::optional<size_t> find_invalid_utf8(std::string_view text);

// `bytes` as UTF-8 text, each maximal invalid subpart replaced by U+FFFD
// (the "substitution of maximal subparts" practice, as Rust's
// String::from_utf8_lossy and the WHATWG decoder do).
std::string utf8_lossy(std::string_view bytes);

// Length of the trailing bytes of `bytes` that are a valid but incomplete
// UTF-8 sequence (0..3): bytes that a following byte could still complete.
size_t incomplete_utf8_tail(std::string_view bytes);

// The GPT-2 byte-level alphabet: every byte is shown as one printable code
// point (printable Latin-1 bytes as themselves, the others as U+0100 + n).
struct ByteLevelAlphabet {
  std::array<char32_t, 256> char_of_byte{};
  // Inverse over code points < 512; -1 where no byte maps there.
  std::array<int16_t, 512> byte_of_char{};
};
const ByteLevelAlphabet& byte_level_alphabet();

// Decodes a byte-level spelled token ("Ġhello") into its raw bytes
// (" hello"); std::nullopt if a character is not in the alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view spelled);
// Raw bytes to their byte-level spelling.
std::string bytes_to_byte_level(std::string_view bytes);

enum class NormalForm { nfc, nfd, nfkc, nfkd };
// `text` (valid UTF-8, may hold NUL bytes) in the given normal form.
std::string normalize(std::string_view text, NormalForm form);

// One code point decoded from valid UTF-8 at `pos`; advances `pos`.
char32_t next_code_point(std::string_view text, size_t& pos);
// Appends `cp` as UTF-8.
void append_utf8(std::string& out, char32_t cp);

}  // namespace musespark::tokenizer
