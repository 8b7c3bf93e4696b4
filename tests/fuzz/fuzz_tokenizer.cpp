// tokenizer.json: normalizer, pre-tokenizer regexes, vocabulary, merges,
// added tokens; a tokenizer that loads must also encode and decode.
#include <filesystem>
#include <string>

#include "fuzz_input.hpp"
#include "musespark/error.hpp"
#include "musespark/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = musespark::fuzz::scratch_dir() / "tokenizer";
  std::filesystem::create_directories(dir);
  auto written = musespark::fuzz::write_input("tokenizer/tokenizer.json", data, size);
  (void)written;
  try {
    auto tokenizer = musespark::Tokenizer::load(dir);
    const std::string text = "Hello, World! 123 + 4567 = ?\n  caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd <|im_end|>\t\xf0\x9f\x98\x80";
    auto ids = tokenizer.encode(text);
    (void)tokenizer.decode(ids);
  } catch (const musespark::Error&) {
  }
  return 0;
}
