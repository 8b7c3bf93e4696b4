// Tokenizer API behaviour: lookups, decode, streaming, errors, malformed files.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "musespark/error.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/utf8.hpp"
#include "tokenizer_test_support.hpp"

namespace musespark::test {
namespace {

// Writes `files` (name -> content) into a fresh folder under the scratch dir.
std::filesystem::path model_dir_with(const std::string& name, const std::map<std::string, std::string>& files) {
  auto dir = scratch_dir() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const auto& [file, content] : files) std::ofstream(dir / file, std::ios::binary) << content;
  return dir;
}

// A tiny valid byte-level BPE tokenizer.json, as JSON to modify.
nlohmann::json tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto& alphabet = tokenizer::byte_level_alphabet();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    tokenizer::append_utf8(s, alphabet.char_of_byte[b]);
    vocab[s] = b;
  }
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["Ġab"] = 258;
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 259}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 260}, {"content", "<L>"}, {"special", true}, {"lstrip", true}},
        {{"id", 261}, {"content", "<R>"}, {"special", true}, {"rstrip", true}},
        {{"id", 262}, {"content", "<W>"}, {"special", false}, {"single_word", true}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", {"ab", "c"}, {"Ġ", "ab"}}}}},
  };
}

Error load_error(const std::filesystem::path& dir) {
  try {
    Tokenizer::load(dir);
  } catch (const Error& e) {
    return e;
  }
  FAIL("Tokenizer::load(" << dir.string() << ") did not throw");
  throw;  // unreachable
}

}  // namespace

TEST_CASE("tokenizer: lookups, vocab size, special tokens, bos/eos") {
  const Tokenizer& qwen = reference_tokenizer("qwen3");
  CHECK(qwen.vocab_size() == 151669);
  CHECK(qwen.token_id("<|im_start|>") == 151644);
  CHECK(qwen.token_id("Ġworld") == 1879);
  CHECK(qwen.token_string(1879) == "Ġworld");
  CHECK(qwen.token_bytes(1879) == " world");
  CHECK_FALSE(qwen.token_id("no such token").has_value());
  CHECK(qwen.is_special(151644));
  CHECK_FALSE(qwen.is_special(151667));  // <think> is an added token but not special
  CHECK_FALSE(qwen.is_special(1879));
  CHECK_FALSE(qwen.bos_id().has_value());  // bos_token: null
  CHECK(qwen.eos_id() == 151645);         // <|im_end|>

  const Tokenizer& llama = reference_tokenizer("llama3");
  CHECK(llama.vocab_size() == 128256);
  CHECK(llama.bos_id() == 128000);
  CHECK(llama.eos_id() == 128001);
  CHECK(llama.token_bytes(128009) == "<|eot_id|>");
}

TEST_CASE("tokenizer: decode, skip_special, out-of-range ids") {
  const Tokenizer& qwen = reference_tokenizer("qwen3");
  auto ids = qwen.encode("<|im_start|>user\nhi<|im_end|>");
  CHECK(ids.front() == 151644);
  CHECK(qwen.decode(ids) == "<|im_start|>user\nhi<|im_end|>");
  CHECK(qwen.decode(ids, /*skip_special=*/true) == "user\nhi");
  CHECK(qwen.decode({}) == "");
  for (int32_t bad : {-1, qwen.vocab_size(), 1 << 30}) {
    std::vector<int32_t> one{bad};
    try {
      qwen.decode(one);
      FAIL("no error for id " << bad);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::invalid_argument);
    }
    CHECK_THROWS_AS(qwen.token_bytes(bad), Error);
  }
  // A lone piece of a multi-byte character decodes to U+FFFD, as HF does.
  auto euro = qwen.encode("€");
  REQUIRE(euro.size() >= 1);
  std::vector<int32_t> ids2 = qwen.encode("x€");
  CHECK(qwen.decode(ids2) == "x€");
}

TEST_CASE("tokenizer: invalid UTF-8 input is an Error{format}") {
  const Tokenizer& qwen = reference_tokenizer("qwen3");
  for (std::string bad : {std::string("abc\xFF"), std::string("\xC3"), std::string("a\xE2\x82"),
                          std::string("\xED\xA0\x80"),                      // surrogate
                          std::string("\xC0\xAF"),                          // overlong
                          std::string("\xF4\x90\x80\x80")}) {               // above U+10FFFF
    try {
      qwen.encode(bad);
      FAIL("no error for invalid UTF-8");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::format);
      CHECK(std::string(e.what()).find("UTF-8") != std::string::npos);
    }
  }
}

TEST_CASE("tokenizer: StreamDecoder never emits half a character") {
  for (std::string family : {"qwen3", "llama3"}) {
    const Tokenizer& tokenizer = reference_tokenizer(family);
    std::string text = "Grüße 👨‍👩‍👧‍👦 你好世界 🇯🇵 नमस्ते <|im_end|> done";
    auto ids = tokenizer.encode(text);
    // The text must actually split characters across tokens for this to test anything.
    size_t partial_tokens = 0;
    for (int32_t id : ids)
      if (tokenizer::incomplete_utf8_tail(tokenizer.token_bytes(id)) > 0 ||
          tokenizer::find_invalid_utf8(tokenizer.token_bytes(id)))
        ++partial_tokens;
    CHECK(partial_tokens > 0);

    Tokenizer::StreamDecoder stream(tokenizer);
    std::string joined;
    for (int32_t id : ids) {
      std::string piece = stream.push(id);
      CHECK_FALSE(tokenizer::find_invalid_utf8(piece).has_value());
      CHECK(piece.find("\xEF\xBF\xBD") == std::string::npos);  // no replacement char either
      joined += piece;
    }
    joined += stream.flush();
    CHECK(joined == tokenizer.decode(ids));
    CHECK(joined == text);
  }
}

TEST_CASE("tokenizer: StreamDecoder equals decode on invalid byte sequences too") {
  const Tokenizer& qwen = reference_tokenizer("qwen3");
  // Single-byte tokens in awkward orders: truncated characters, stray continuation bytes.
  std::vector<int32_t> byte_ids;
  for (int b : {0xE4, 0xBD, 0x41, 0x80, 0xF0, 0x9F, 0x98, 0xE2, 0x82, 0xAC, 0xF0, 0x9F}) {
    std::string spelled;
    tokenizer::append_utf8(spelled, tokenizer::byte_level_alphabet().char_of_byte[b]);
    auto id = qwen.token_id(spelled);
    REQUIRE(id.has_value());
    byte_ids.push_back(*id);
  }
  Tokenizer::StreamDecoder stream(qwen);
  std::string joined;
  for (int32_t id : byte_ids) joined += stream.push(id);
  joined += stream.flush();
  CHECK(joined == qwen.decode(byte_ids));
  CHECK(joined == "\xEF\xBF\xBD" "A" "\xEF\xBF\xBD" "\xEF\xBF\xBD" "€" "\xEF\xBF\xBD");
  // skip_special drops special tokens from the stream.
  Tokenizer::StreamDecoder skipping(qwen, /*skip_special=*/true);
  CHECK(skipping.push(151645) == "");
  CHECK(skipping.push(*qwen.token_id("hi")) == "hi");
}

TEST_CASE("tokenizer: const methods are safe to call from many threads") {
  const Tokenizer& llama = reference_tokenizer("llama3");
  std::string text = "Concurrent encoding of the same text: 12345, émigré, 东京, 🙂!\n";
  auto expected = llama.encode(text);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string variant = text + std::to_string(i * 4 + t);
        auto ids = llama.encode(variant);
        if (llama.decode(ids) != variant || !std::equal(expected.begin(), expected.end(), ids.begin())) ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
}

TEST_CASE("tokenizer: a tiny tokenizer.json with ByteLevel use_regex and pair merges") {
  auto dir = model_dir_with("tiny", {{"tokenizer.json", tiny_tokenizer_json().dump()}});
  Tokenizer tiny = Tokenizer::load(dir);
  CHECK(tiny.vocab_size() == 263);
  CHECK(tiny.encode("abc") == std::vector<int32_t>{257});
  CHECK(tiny.encode("abc ab") == std::vector<int32_t>{257, 258});       // GPT-2 regex keeps the space with the word
  CHECK(tiny.encode("ab<|end|>c") == std::vector<int32_t>{256, 259, 'c'});
  CHECK_FALSE(tiny.bos_id().has_value());
  CHECK(tiny.decode(tiny.encode("abc ab<|end|>")) == "abc ab<|end|>");
  // lstrip / rstrip swallow the whitespace beside the token; single_word needs word boundaries.
  CHECK(tiny.encode("c  <L> c") == std::vector<int32_t>{'c', 260, ' ', 'c'});
  CHECK(tiny.encode("c <R>  c") == std::vector<int32_t>{'c', ' ', 261, 'c'});
  CHECK(tiny.encode("c <W> c").at(2) == 262);
  auto glued = tiny.encode("c<W>c");
  CHECK(std::count(glued.begin(), glued.end(), 262) == 0);
}

TEST_CASE("tokenizer: malformed tokenizer.json gives an Error naming the file and the field") {
  std::string good = tiny_tokenizer_json().dump();

  SUBCASE("missing file") {
    auto e = load_error(model_dir_with("missing", {}));
    CHECK(e.kind() == ErrorKind::io);
    CHECK(e.file().find("tokenizer.json") != std::string::npos);
  }
  SUBCASE("truncated JSON") {
    auto e = load_error(model_dir_with("truncated", {{"tokenizer.json", good.substr(0, good.size() / 2)}}));
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.file().find("tokenizer.json") != std::string::npos);
  }
  SUBCASE("missing model") {
    auto json = tiny_tokenizer_json();
    json.erase("model");
    auto e = load_error(model_dir_with("no-model", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.file().find("tokenizer.json") != std::string::npos);
    CHECK(e.field() == "model");
  }
  SUBCASE("unknown model.type") {
    auto json = tiny_tokenizer_json();
    json["model"]["type"] = "Unigram";
    auto e = load_error(model_dir_with("unigram", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::unsupported);
    CHECK(e.field() == "model.type");
    CHECK(std::string(e.what()).find("tokenizer.json: model.type: ") != std::string::npos);
  }
  SUBCASE("unknown normalizer") {
    auto json = tiny_tokenizer_json();
    json["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
    auto e = load_error(model_dir_with("lowercase", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::unsupported);
    CHECK(e.field() == "normalizer.normalizers[1].type");
  }
  SUBCASE("unknown pre-tokenizer and bad regex") {
    auto json = tiny_tokenizer_json();
    json["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
    auto e = load_error(model_dir_with("whitespace", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::unsupported);
    CHECK(e.field() == "pre_tokenizer.pretokenizers[0].type");

    json["pre_tokenizer"] = {{"type", "Sequence"},
                             {"pretokenizers",
                              {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}},
                               {{"type", "ByteLevel"}, {"use_regex", false}}}}};
    e = load_error(model_dir_with("bad-regex", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.field() == "pre_tokenizer.pretokenizers[0].pattern.Regex");
  }
  SUBCASE("merge of tokens not in the vocab") {
    auto json = tiny_tokenizer_json();
    json["model"]["merges"].push_back("zz yy");
    auto e = load_error(model_dir_with("bad-merge", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.field() == "model.merges[3]");
  }
  SUBCASE("added token without an id") {
    auto json = tiny_tokenizer_json();
    json["added_tokens"][1].erase("id");
    auto e = load_error(model_dir_with("bad-added", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.field() == "added_tokens[1].id");
  }
  SUBCASE("vocab is not an object") {
    auto json = tiny_tokenizer_json();
    json["model"]["vocab"] = nlohmann::json::array();
    auto e = load_error(model_dir_with("bad-vocab", {{"tokenizer.json", json.dump()}}));
    CHECK(e.field() == "model.vocab");
  }
  SUBCASE("non-ByteLevel decoder") {
    auto json = tiny_tokenizer_json();
    json["decoder"] = {{"type", "WordPiece"}};
    auto e = load_error(model_dir_with("wordpiece", {{"tokenizer.json", json.dump()}}));
    CHECK(e.kind() == ErrorKind::unsupported);
    CHECK(e.field() == "decoder.type");
  }
  SUBCASE("eos_token naming a token that does not exist") {
    auto e = load_error(model_dir_with(
        "bad-eos", {{"tokenizer.json", good}, {"tokenizer_config.json", R"({"eos_token": {"content": "<nope>"}})"}}));
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.file().find("tokenizer_config.json") != std::string::npos);
    CHECK(e.field() == "eos_token");
  }
}

TEST_CASE("tokenizer: Rust regex \\s is translated to Unicode White_Space for PCRE2") {
  CHECK(tokenizer::translate_rust_regex(R"(\s+(?!\S)|[^\s\p{L}])") ==
        R"([\s\x{85}]+(?![^\s\x{85}])|[^\s\x{85}\p{L}])");
  tokenizer::Regex spaces(R"(\s+)", "t", "f");
  auto matches = spaces.find_all("a\xC2\x85 \xE3\x80\x80" "b");  // NEL, space, ideographic space
  REQUIRE(matches.size() == 1);
  CHECK(matches[0] == std::pair<size_t, size_t>{1, 7});
}

TEST_CASE("tokenizer: UTF-8 helpers") {
  using tokenizer::utf8_lossy;
  CHECK(utf8_lossy("ok") == "ok");
  CHECK(utf8_lossy("\xE2\x82") == "\xEF\xBF\xBD");                 // truncated: one U+FFFD
  CHECK(utf8_lossy("\xE0\x80\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // maximal subparts
  CHECK(tokenizer::incomplete_utf8_tail("a\xF0\x9F\x98") == 3);
  CHECK(tokenizer::incomplete_utf8_tail("a\xF0\x9F\x98\x80") == 0);
  CHECK(tokenizer::incomplete_utf8_tail("a\x80") == 0);
  CHECK(tokenizer::normalize("e\xCC\x81", tokenizer::NormalForm::nfc) == "\xC3\xA9");
  CHECK(tokenizer::normalize(std::string("a\0b", 3), tokenizer::NormalForm::nfc) == std::string("a\0b", 3));
}

}  // namespace musespark::test
