// Chat templates: our C++ ChatML (Qwen3) and Llama-3 renderers against the
// models' own chat_template.
//  - Llama 3: rendered by @lenml/tokenizers' apply_chat_template (reference_chat.mjs).
//  - Qwen3: that engine cannot parse Qwen3's template, so the expected strings in
//    qwen3_chat_expected.json were rendered by Python jinja2 as transformers does
//    (render_qwen3_chat.py) and checked by hand; a few are also written out below.
#include <doctest/doctest.h>

#include <algorithm>

#include "musespark/chat.hpp"
#include "musespark/error.hpp"
#include "tokenizer_test_support.hpp"

namespace musespark::test {
namespace {

std::vector<ChatMessage> messages_of(const nlohmann::json& json) {
  std::vector<ChatMessage> out;
  for (const auto& m : json) out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return out;
}

}  // namespace

TEST_CASE("tokenizer chat: templates are detected from tokenizer_config.json") {
  auto qwen = ChatTemplate::load(reference_model_dir("qwen3"));
  CHECK(qwen.format() == ChatFormat::chatml);
  CHECK(qwen.supports_thinking());
  CHECK(qwen.stop_tokens() == std::vector<std::string>{"<|im_end|>", "<|endoftext|>"});
  auto llama = ChatTemplate::load(reference_model_dir("llama3"));
  CHECK(llama.format() == ChatFormat::llama3);
  CHECK_FALSE(llama.supports_thinking());
  CHECK(llama.stop_tokens() == std::vector<std::string>{"<|eot_id|>", "<|end_of_text|>"});
  // Every stop token is a single token of its tokenizer.
  for (const auto& t : qwen.stop_tokens()) CHECK(reference_tokenizer("qwen3").token_id(t).has_value());
  for (const auto& t : llama.stop_tokens()) CHECK(reference_tokenizer("llama3").token_id(t).has_value());
}

TEST_CASE("tokenizer chat: Qwen3 renders as its Jinja template does") {
  auto qwen = ChatTemplate::load(reference_model_dir("qwen3"));
  auto expected = nlohmann::json::parse(read_text(source_dir() / "tests/tokenizer/qwen3_chat_expected.json"));
  size_t checked = 0;
  for (const auto& [name, conversation] : expected["convs"].items()) {
    auto messages = messages_of(conversation);
    for (bool generation : {true, false})
      for (bool thinking : {true, false}) {
        std::string key = name + "|" + (generation ? "True" : "False") + "|" + (thinking ? "True" : "False");
        INFO("conversation " << key);
        CHECK(qwen.render(messages, generation, thinking) == expected["out"].at(key).get<std::string>());
        ++checked;
      }
  }
  CHECK(checked >= 24);
}

TEST_CASE("tokenizer chat: Qwen3 hand-checked prompts") {
  auto qwen = ChatTemplate::of(ChatFormat::chatml);
  std::vector<ChatMessage> history{{"system", "Be helpful."},
                                   {"user", "Hi"},
                                   {"assistant", "<think>\nThe user greets.\n</think>\n\nHello! How can I help?"},
                                   {"user", "Count to three."}};
  // Earlier reasoning is dropped; thinking off pre-fills an empty thought.
  CHECK(qwen.render(history, true, false) ==
        "<|im_start|>system\nBe helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nCount to three.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  CHECK(qwen.render(std::span(history).first(2), true, true) ==
        "<|im_start|>system\nBe helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // The last assistant turn (after the last user message) keeps its reasoning.
  std::vector<ChatMessage> answered{{"user", "Hi"}, {"assistant", "<think>\nreason\n</think>\n\nanswer"}};
  CHECK(qwen.render(answered, false) ==
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nreason\n</think>\n\nanswer<|im_end|>\n");
  std::vector<ChatMessage> bad{{"narrator", "x"}};
  CHECK_THROWS_AS(qwen.render(bad), Error);
}

TEST_CASE("tokenizer chat: Llama 3 renders as @lenml/tokenizers renders its template") {
  auto llama = ChatTemplate::load(reference_model_dir("llama3"));
  auto reference = run_node_script("reference_chat.mjs", "", "reference_chat.json");
  REQUIRE(reference.size() >= 4);
  for (const auto& c : reference) {
    INFO("conversation " << c["name"].get<std::string>());
    auto messages = messages_of(c["messages"]);
    CHECK(llama.render(messages, c["add_generation_prompt"].get<bool>()) == c["text"].get<std::string>());
  }
  // The shipped (base-model) template adds the assistant header even without
  // add_generation_prompt; we honour the flag as Llama-3-Instruct's template does.
  std::vector<ChatMessage> one{{"user", " hi "}};
  CHECK(llama.render(one, false) == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
  CHECK(llama.render(one, true, false) == llama.render(one, true, true));  // no thinking switch
}

TEST_CASE("tokenizer chat: rendered prompts tokenize with their special tokens intact") {
  const Tokenizer& tokenizer = reference_tokenizer("qwen3");
  std::vector<ChatMessage> messages{{"user", "Hi"}};
  auto ids = tokenizer.encode(ChatTemplate::of(ChatFormat::chatml).render(messages));
  CHECK(ids.front() == *tokenizer.token_id("<|im_start|>"));
  CHECK(std::count(ids.begin(), ids.end(), *tokenizer.token_id("<|im_end|>")) == 1);
}

TEST_CASE("tokenizer chat: missing or unknown chat_template is Error{unsupported} naming the file and field") {
  auto dir = scratch_dir() / "chat-unknown";
  std::filesystem::create_directories(dir);
  for (std::string config : {R"({"bos_token": "<s>"})", R"({"chat_template": "{{ messages[0].content }}"})",
                             R"({"chat_template": null})"}) {
    std::ofstream(dir / "tokenizer_config.json") << config;
    try {
      ChatTemplate::load(dir);
      FAIL("no error for " << config);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::unsupported);
      CHECK(e.file().find("tokenizer_config.json") != std::string::npos);
      CHECK(e.field() == "chat_template");
    }
  }
  // A Qwen2.5-style ChatML template: no thinking, default system prompt.
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"chat_template": "{%- if messages[0]['role'] == 'system' %}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}<|im_start|>"})";
  auto qwen25 = ChatTemplate::load(dir);
  CHECK_FALSE(qwen25.supports_thinking());
  std::vector<ChatMessage> messages{{"user", "Hi"}, {"assistant", "<think>x</think>y"}, {"user", "Again"}};
  CHECK(qwen25.render(messages, true, false) ==
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>x</think>y<|im_end|>\n"
        "<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace musespark::test
