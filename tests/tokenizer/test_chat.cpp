// Chat templates: our C++ ChatML (Qwen3) and Llama-3 renderers against the
// models' own chat_template.
//  - Llama 3: rendered by @lenml/tokenizers' apply_chat_template (reference_chat.mjs).
//  - Qwen3: that engine cannot parse Qwen3's template, so the expected strings in
//    qwen3_chat_expected.json were rendered by Python jinja2 as transformers does
//    (render_qwen3_chat.py) and checked by hand; a few are also written out below.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <map>

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
  CHECK(llama.is_jinja());
  // The shipped (base-model) template adds the assistant header even without
  // add_generation_prompt, and so does the model's template here, as in
  // transformers; the built-in one honours the flag as Llama-3-Instruct's does.
  std::vector<ChatMessage> one{{"user", " hi "}};
  CHECK(llama.render(one, false) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  auto builtin = ChatTemplate::of(ChatFormat::llama3);
  CHECK_FALSE(builtin.is_jinja());
  CHECK(builtin.render(one, false) == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
  CHECK(builtin.render(one, true, false) == builtin.render(one, true, true));  // no thinking switch
}

TEST_CASE("tokenizer chat: rendered prompts tokenize with their special tokens intact") {
  const Tokenizer& tokenizer = reference_tokenizer("qwen3");
  std::vector<ChatMessage> messages{{"user", "Hi"}};
  auto ids = tokenizer.encode(ChatTemplate::of(ChatFormat::chatml).render(messages));
  CHECK(ids.front() == *tokenizer.token_id("<|im_start|>"));
  CHECK(std::count(ids.begin(), ids.end(), *tokenizer.token_id("<|im_end|>")) == 1);
}

TEST_CASE("tokenizer chat: a folder without a template gets the built-in of its vocabulary, or Error{unsupported}") {
  auto dir = scratch_dir() / "chat-missing";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"added_tokens": [{"id": 0, "content": "<s>"}]})";
  for (std::string config : {R"({"bos_token": "<s>"})", R"({"chat_template": null})"}) {
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
  std::ofstream(dir / "tokenizer.json") << R"({"added_tokens": [{"id": 0, "content": "<|im_start|>"}]})";
  auto chatml = ChatTemplate::load(dir);
  CHECK_FALSE(chatml.is_jinja());
  CHECK(chatml.format() == ChatFormat::chatml);
  std::ofstream(dir / "tokenizer.json") << R"({"added_tokens": [{"id": 0, "content": "<|start_header_id|>"}]})";
  CHECK(ChatTemplate::load(dir).format() == ChatFormat::llama3);
  // Broken templates are errors naming the file, the field and the line.
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "{% for m in messages %}\n{{ m.content }"})";
  try {
    ChatTemplate::load(dir);
    FAIL("no error for a broken template");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.file().find("tokenizer_config.json") != std::string::npos);
    CHECK(e.field() == "chat_template");
    CHECK(std::string(e.message()).find("line 2") != std::string::npos);
  }
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": 7})";
  CHECK_THROWS_WITH_AS(ChatTemplate::load(dir), doctest::Contains("chat_template"), Error);
}

namespace {

// The golden cases of tests/tokenizer/jinja_expected.json (jinja2 as
// apply_chat_template), with the template each names.
const nlohmann::ordered_json& jinja_golden() {
  static const auto g = nlohmann::ordered_json::parse(read_text(source_dir() / "tests/tokenizer/jinja_expected.json"));
  return g;
}

ChatTemplate golden_template(const nlohmann::ordered_json& spec, const std::string& name) {
  const auto path = source_dir() / spec["path"].get<std::string>();
  if (spec.contains("field")) return ChatTemplate::load(path.parent_path());  // a real model folder
  std::vector<std::pair<std::string, std::string>> special;
  for (const char* key : {"bos_token", "eos_token"})
    if (spec.contains(key)) special.emplace_back(key, spec[key].get<std::string>());
  return ChatTemplate::from_jinja(read_text(path), name + ".jinja", special);
}

}  // namespace

TEST_CASE("tokenizer chat: the model's own template renders as apply_chat_template does, tools and kwargs included") {
  const auto& g = jinja_golden();
  const GoldenClock clock(g);
  std::map<std::string, ChatTemplate> templates;
  for (const auto& [name, spec] : g["templates"].items()) templates.emplace(name, golden_template(spec, name));
  size_t cases = 0, errors = 0;
  for (const auto& c : g["cases"]) {
    const ChatTemplate& chat = templates.at(c["template"].get<std::string>());
    const auto& conversation = g["conversations"][c["conversation"].get<std::string>()];
    ChatRenderOptions options;
    options.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
    for (const auto& [key, value] : conversation.items()) {
      if (key == "tools") options.tools_json = value.dump();
      else if (key != "messages") kwargs[key] = value;
    }
    if (c.contains("enable_thinking")) kwargs["enable_thinking"] = c["enable_thinking"];
    if (!kwargs.empty()) options.kwargs_json = kwargs.dump();
    INFO("template " << c["template"].get<std::string>() << ", conversation " << c["conversation"].get<std::string>()
                     << ", add_generation_prompt " << options.add_generation_prompt << ", kwargs " << options.kwargs_json);
    ++cases;
    const std::string messages = conversation["messages"].dump();
    if (c.contains("error")) {
      CHECK_THROWS_WITH_AS(chat.render_json(messages, options), doctest::Contains(c["error"].get<std::string>().c_str()),
                           Error);
      ++errors;
      continue;
    }
    CHECK(chat.render_json(messages, options) == c["output"].get<std::string>());
  }
  CHECK(cases >= 234);
  CHECK(errors >= 8);
  // The ChatMessage path is the same rendering, enable_thinking passed through.
  const ChatTemplate& qwen = templates.at("qwen3");
  CHECK(qwen.is_jinja());
  std::vector<ChatMessage> one{{"user", "Hi"}};
  CHECK(qwen.render(one, true, false) == qwen.render_json(R"([{"role": "user", "content": "Hi"}])",
                                                          {true, "", R"({"enable_thinking": false})"}));
  CHECK(qwen.render(one, true, false).ends_with("<think>\n\n</think>\n\n"));
}

TEST_CASE("tokenizer chat: render_json refuses malformed arguments, naming them") {
  auto qwen = ChatTemplate::load(reference_model_dir("qwen3"));
  auto field_of = [&](std::string_view messages, ChatRenderOptions o = {}) {
    try {
      qwen.render_json(messages, o);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::invalid_argument);
      return e.field();
    }
    FAIL("no error for " << messages);
    return std::string();
  };
  CHECK(field_of("[{") == "messages");
  CHECK(field_of(R"({"role": "user"})") == "messages");
  CHECK(field_of("[]", {true, "{}", ""}) == "tools");
  CHECK(field_of("[]", {true, "", "[1]"}) == "kwargs");
  CHECK(field_of("[]", {true, "", R"({"add_generation_prompt": false})"}) == "kwargs.add_generation_prompt");
  // The built-in templates take text parts, not tools.
  auto builtin = ChatTemplate::of(ChatFormat::chatml);
  CHECK(builtin.render_json(R"([{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}])") ==
        "<|im_start|>user\nAB<|im_end|>\n<|im_start|>assistant\n");
  CHECK_THROWS_AS(builtin.render_json("[]", {true, R"([{"type": "function"}])", ""}), Error);
  CHECK_THROWS_AS(ChatTemplate::of(ChatFormat::other), Error);
}

namespace {

// A minimal GGUF v3 file holding only metadata (no tensors).
struct GgufWriter {
  std::string bytes, kvs;
  uint64_t count = 0;
  template <class T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void put_string(std::string& out, std::string_view s) {
    put<uint64_t>(out, s.size());
    out.append(s);
  }
  void string(std::string_view key, std::string_view value) {
    put_string(kvs, key);
    put<uint32_t>(kvs, 8);
    put_string(kvs, value);
    ++count;
  }
  void u32(std::string_view key, uint32_t value) {
    put_string(kvs, key);
    put<uint32_t>(kvs, 4);
    put<uint32_t>(kvs, value);
    ++count;
  }
  void strings(std::string_view key, const std::vector<std::string>& values) {
    put_string(kvs, key);
    put<uint32_t>(kvs, 9);
    put<uint32_t>(kvs, 8);
    put<uint64_t>(kvs, values.size());
    for (const auto& v : values) put_string(kvs, v);
    ++count;
  }
  void write(const std::filesystem::path& path) const {
    std::string out = "GGUF";
    put<uint32_t>(out, 3);
    put<uint64_t>(out, 0);
    put<uint64_t>(out, count);
    out += kvs;
    std::ofstream(path, std::ios::binary) << out;
  }
};

}  // namespace

TEST_CASE("tokenizer chat: where a model keeps its template (chat_template.jinja, named lists, processors, GGUF)") {
  auto dir = scratch_dir() / "chat-where";
  std::filesystem::create_directories(dir);
  const std::string source = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"
                             "{% if tools %}T{{ tools | length }}{% endif %}{% if add_generation_prompt %}[assistant]{% endif %}";
  std::ofstream(dir / "tokenizer.json") << "{}";
  // tokenizer_config.json: special tokens as strings or AddedToken objects;
  // special_tokens_map.json fills the ones it lacks.
  nlohmann::ordered_json config = {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
                                   {"chat_template", nlohmann::ordered_json::array(
                                                         {{{"name", "default"}, {"template", source}},
                                                          {{"name", "tool_use"}, {"template", "tools:" + source}}})}};
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  std::ofstream(dir / "special_tokens_map.json") << R"({"eos_token": "</s>", "bos_token": "<ignored>"})";
  const std::string hi = R"([{"role": "user", "content": "hi"}])";
  auto named = ChatTemplate::load(dir);
  CHECK(named.format() == ChatFormat::other);
  CHECK(named.render_json(hi) == "<s>[user]hi</s>[assistant]");
  CHECK(named.render_json(hi, {false, R"([{"type": "function"}])", ""}) == "tools:<s>[user]hi</s>T1");
  CHECK(named.stop_tokens() == std::vector<std::string>{"</s>"});
  // chat_template.json (a processor's) is read when tokenizer_config.json has none.
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "<e>"})";
  std::ofstream(dir / "chat_template.json") << nlohmann::json({{"chat_template", "P" + source}}).dump();
  CHECK(ChatTemplate::load(dir).render_json(hi, {false, "", ""}) == "P<ignored>[user]hi<e>");
  // chat_template.jinja comes first.
  std::ofstream(dir / "chat_template.jinja") << "J{{ messages | length }}{{ eos_token }}";
  CHECK(ChatTemplate::load(dir).render_json(hi) == "J1<e>");
  // kwargs override the special tokens.
  CHECK(ChatTemplate::load(dir).render_json(hi, {true, "", R"({"eos_token": "!"})"}) == "J1!");

  // A GGUF: tokenizer.chat_template, the special tokens named by id.
  GgufWriter w;
  w.string("general.architecture", "llama");
  w.strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<|end|>"});
  w.u32("tokenizer.ggml.bos_token_id", 1);
  w.u32("tokenizer.ggml.eos_token_id", 2);
  w.string("tokenizer.chat_template", source + "<|end|>");
  w.write(dir / "model.gguf");
  auto gguf = ChatTemplate::load(dir / "model.gguf");
  CHECK(gguf.render_json(hi, {false, "", ""}) == "<s>[user]hi</s><|end|>");
  CHECK(gguf.stop_tokens() == std::vector<std::string>{"<|end|>", "</s>"});
  GgufWriter bad = w;
  bad.u32("tokenizer.ggml.unknown_token_id", 9);
  bad.write(dir / "bad.gguf");
  CHECK_THROWS_WITH_AS(ChatTemplate::load(dir / "bad.gguf"), doctest::Contains("tokenizer.ggml.unknown_token_id"), Error);
  GgufWriter none;
  none.string("general.architecture", "llama");
  none.write(dir / "none.gguf");
  try {
    ChatTemplate::load(dir / "none.gguf");
    FAIL("no error for a GGUF without a template");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::unsupported);
    CHECK(e.field() == "tokenizer.chat_template");
    CHECK(e.file().find("none.gguf") != std::string::npos);
  }
}

}  // namespace musespark::test
