// The default model's tokenizer files: our loader reads them, plain text is
// one token per byte, the added tokens keep their ids, the chat template is
// detected as Qwen3-Thinking style, and the reference implementation
// (@lenml/tokenizers, with its Jinja engine) agrees on ids and prompts.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "distill/tokenizer_files.hpp"
#include "musespark/chat.hpp"
#include "musespark/tokenizer.hpp"
#include "tokenizer/tokenizer_test_support.hpp"

using namespace musespark;
using namespace musespark::detail;

namespace {

// Written once per test process.
const std::filesystem::path& default_tokenizer_dir() {
  static const std::filesystem::path dir = [] {
    auto d = test::scratch_dir() / "default-tokenizer";
    write_tokenizer_files(d);
    return d;
  }();
  return dir;
}

const Tokenizer& default_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(default_tokenizer_dir());
  return tokenizer;
}

std::vector<int32_t> byte_ids(std::string_view text) {
  std::vector<int32_t> ids;
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

}  // namespace

TEST_CASE("default tokenizer: one token per byte, id = byte value, and back") {
  const Tokenizer& t = default_tokenizer();
  CHECK(t.vocab_size() == kDefaultVocabSize);
  const std::vector<std::string> texts = {
      "What is 37 + 48 - 19?", "  two  spaces\tand\r\nnewlines \n", "Übersetze: 你好，世界 👋🏽 e\u0301 (NFD kept)",
      std::string("nul \0 inside", 13), "<think without close <|im_end", "'s 've 123456789 ---"};
  for (const std::string& text : texts) {
    CAPTURE(text);
    const std::vector<int32_t> ids = t.encode(text);
    CHECK(ids == byte_ids(text));
    CHECK(t.decode(ids) == text);
  }
  // Every single byte is its own token and decodes back to that byte.
  for (int b = 0; b < 256; ++b) {
    CHECK(t.token_bytes(b) == std::string(1, static_cast<char>(b)));
    CHECK(!t.is_special(b));
  }
  CHECK(t.token_string(32) == "\u0120");  // GPT-2's byte-level spelling of a space ("Ġ")
  CHECK(t.token_string('a') == "a");
}

TEST_CASE("default tokenizer: added tokens are single ids, specials only where they should be") {
  const Tokenizer& t = default_tokenizer();
  REQUIRE(std::size(kDefaultAddedTokens) == 12);
  for (size_t i = 0; i < std::size(kDefaultAddedTokens); ++i) {
    const DefaultAddedToken& a = kDefaultAddedTokens[i];
    CAPTURE(a.content);
    CHECK(a.id == static_cast<int32_t>(256 + i));
    CHECK(t.encode(a.content) == std::vector<int32_t>{a.id});
    CHECK(t.token_id(a.content) == a.id);
    CHECK(t.is_special(a.id) == a.special);
    CHECK(t.decode(std::vector<int32_t>{a.id}) == a.content);
    CHECK(t.decode(std::vector<int32_t>{a.id}, true) == (a.special ? "" : std::string(a.content)));
  }
  // In running text.
  const std::vector<int32_t> ids = t.encode("<think>\n1+2=3\n</think>\n\n3<|im_end|>");
  std::vector<int32_t> want = {kThinkId};
  for (int32_t b : byte_ids("\n1+2=3\n")) want.push_back(b);
  want.push_back(kThinkEndId);
  for (int32_t b : byte_ids("\n\n3")) want.push_back(b);
  want.push_back(kImEndId);
  CHECK(ids == want);
  CHECK(t.eos_id() == kImEndId);
  CHECK(!t.bos_id().has_value());
  // The reasoning tags survive skip_special decoding, the chat markers do not.
  CHECK(t.decode(ids, true) == "<think>\n1+2=3\n</think>\n\n3");
}

TEST_CASE("default tokenizer: the chat template opens the thought, or writes an empty one") {
  const ChatTemplate chat = ChatTemplate::load(default_tokenizer_dir());
  CHECK(chat.format() == ChatFormat::chatml);
  CHECK(chat.supports_thinking());
  CHECK(chat.opens_think());
  const std::vector<ChatMessage> messages = {{"user", "What is 2 + 2?"}};
  CHECK(chat.render(messages) == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n");
  CHECK(chat.render(messages, true, false) ==
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // The whole prompt is chat markers plus bytes.
  const std::vector<int32_t> ids = default_tokenizer().encode(chat.render(messages));
  CHECK(ids.front() == kImStartId);
  CHECK(ids.back() == '\n');
  CHECK(ids[ids.size() - 2] == kThinkId);
}

TEST_CASE("default tokenizer: ids and chat prompts equal the reference (@lenml/tokenizers)") {
  const nlohmann::json ref = test::run_node_script("../distill/reference_default_tokenizer.mjs",
                                                   "'" + default_tokenizer_dir().string() + "'",
                                                   "default_tokenizer_reference.json");
  const Tokenizer& t = default_tokenizer();
  REQUIRE(ref["texts"].size() >= 8);
  for (const auto& c : ref["texts"]) {
    const std::string text = c["text"].get<std::string>();
    CAPTURE(text);
    CHECK(t.encode(text) == c["ids"].get<std::vector<int32_t>>());
  }
  const ChatTemplate chat = ChatTemplate::load(default_tokenizer_dir());
  REQUIRE(ref["chats"].size() >= 3);
  for (const auto& c : ref["chats"]) {
    std::vector<ChatMessage> messages;
    for (const auto& m : c["messages"]) messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    CAPTURE(c.dump());
    CHECK(chat.render(messages, true, c["enable_thinking"].get<bool>()) == c["text"].get<std::string>());
  }
}

TEST_CASE("default tokenizer: ChatTemplate renders what jinja2 renders from the template") {
  // Rendered by tests/distill/render_default_chat.py (Python jinja2, as HF
  // transformers does) from the template it was given, stored alongside.
  const nlohmann::json expected =
      nlohmann::json::parse(test::read_text(test::source_dir() / "tests/distill/default_chat_expected.json"));
  const nlohmann::json config =
      nlohmann::json::parse(test::read_text(default_tokenizer_dir() / "tokenizer_config.json"));
  REQUIRE_MESSAGE(expected["chat_template"] == config["chat_template"],
                  "the template changed: run python3 tests/distill/render_default_chat.py");
  const ChatTemplate chat = ChatTemplate::load(default_tokenizer_dir());
  size_t checked = 0;
  for (const auto& [key, text] : expected["out"].items()) {
    // key: "<conversation>|<add_generation_prompt>|<enable_thinking>"
    const size_t bar1 = key.find('|'), bar2 = key.find('|', bar1 + 1);
    std::vector<ChatMessage> messages;
    for (const auto& m : expected["convs"][key.substr(0, bar1)])
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    CAPTURE(key);
    CHECK(chat.render(messages, key.substr(bar1 + 1, bar2 - bar1 - 1) == "True", key.substr(bar2 + 1) == "True") ==
          text.get<std::string>());
    ++checked;
  }
  CHECK(checked == 36);
}
