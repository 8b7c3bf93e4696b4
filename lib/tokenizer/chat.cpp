#include "musespark/chat.hpp"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/gguf.hpp"
#include "common/json_file.hpp"
#include "musespark/error.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer/jinja.hpp"

namespace musespark {

namespace detail {

// A model's Jinja template(s) and the variables HF passes beside the messages.
struct JinjaChat {
  std::string source;                                  // the default template's text
  jinja::Template main;
  std::optional<jinja::Template> tool_use;             // rendered when tools are given
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();  // bos_token, ... (strings or lists)
};

}  // namespace detail

namespace {

using nlohmann::ordered_json;
namespace jinja = detail::jinja;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// Python's str.strip(chars) family, as the templates use them.
std::string_view lstrip(std::string_view s, std::string_view chars) {
  size_t i = s.find_first_not_of(chars);
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}
std::string_view rstrip(std::string_view s, std::string_view chars) {
  size_t i = s.find_last_not_of(chars);
  return i == std::string_view::npos ? std::string_view() : s.substr(0, i + 1);
}
std::string_view strip(std::string_view s, std::string_view chars) { return lstrip(rstrip(s, chars), chars); }
// Jinja's `trim` filter (Python str.strip() on ASCII whitespace).
constexpr std::string_view kWhitespace = " \t\n\r\v\f";

ChatFormat family_of(std::string_view text) {
  if (contains(text, "<|im_start|>")) return ChatFormat::chatml;
  if (contains(text, "<|start_header_id|>")) return ChatFormat::llama3;
  return ChatFormat::other;
}

// The special-token variables HF's special_tokens_map gives a template.
constexpr std::string_view kSpecialTokenKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                  "pad_token", "cls_token", "mask_token"};

// Adds the special tokens of `config` not yet in `out`.
void add_special_tokens(const nlohmann::json& config, ordered_json& out) {
  if (!config.is_object()) return;
  for (std::string_view key : kSpecialTokenKeys) {
    auto it = config.find(std::string(key));
    if (it == config.end() || out.contains(key)) continue;
    if (auto t = detail::token_content(*it)) out[std::string(key)] = *t;
  }
  auto extra = config.find("additional_special_tokens");
  if (extra != config.end() && extra->is_array() && !out.contains("additional_special_tokens")) {
    ordered_json list = ordered_json::array();
    for (const auto& v : *extra)
      if (auto t = detail::token_content(v)) list.push_back(*t);
    out["additional_special_tokens"] = std::move(list);
  }
}

std::shared_ptr<const detail::JinjaChat> jinja_chat(std::string source, const std::string& tool_use,
                                                     const std::string& name, ordered_json special_tokens) {
  auto main = jinja::Template::parse(source, name);
  std::optional<jinja::Template> tools;
  if (!tool_use.empty()) tools = jinja::Template::parse(tool_use, name);
  return std::make_shared<const detail::JinjaChat>(
      detail::JinjaChat{std::move(source), std::move(main), std::move(tools), std::move(special_tokens)});
}

// Reads a JSON argument of render_json with its keys in order.
ordered_json parse_argument(std::string_view text, const char* field) {
  try {
    return ordered_json::parse(text.begin(), text.end());
  } catch (const ordered_json::exception& e) {
    throw Error(ErrorKind::invalid_argument, "", field, std::string("malformed JSON: ") + e.what());
  }
}

// Messages as the built-in renderers take them: text content only.
std::vector<ChatMessage> plain_messages(const ordered_json& messages) {
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string field = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw Error(ErrorKind::invalid_argument, "", field + ".role", "expected an object with a string role");
    std::string content;
    auto c = m.find("content");
    if (c == m.end() || c->is_null()) {
    } else if (c->is_string()) {
      content = c->get<std::string>();
    } else if (c->is_array()) {
      for (const auto& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          throw Error(ErrorKind::invalid_argument, "", field + ".content",
                      "the built-in template takes text parts only ({\"type\": \"text\", \"text\": ...})");
        content += part["text"].get<std::string>();
      }
    } else {
      throw Error(ErrorKind::invalid_argument, "", field + ".content", "expected a string or a list of parts");
    }
    out.push_back({m["role"].get<std::string>(), std::move(content)});
  }
  return out;
}

// The template of a folder: (text, the file it came from, tool_use text).
struct FolderTemplate {
  std::string text, tool_use, file;
};

std::optional<FolderTemplate> folder_template(const std::filesystem::path& dir, const nlohmann::json& config) {
  std::error_code ec;
  if (auto jinja_file = dir / "chat_template.jinja"; std::filesystem::is_regular_file(jinja_file, ec))
    return FolderTemplate{detail::read_file(jinja_file), "", jinja_file.string()};
  auto from_field = [](const nlohmann::json& object, const std::string& file) -> std::optional<FolderTemplate> {
    auto it = object.find("chat_template");
    if (it == object.end() || it->is_null()) return std::nullopt;
    FolderTemplate t{"", "", file};
    if (it->is_string()) {
      t.text = it->get<std::string>();
    } else if (it->is_array()) {
      // A list of named templates: "default", and "tool_use" for tools.
      for (const auto& entry : *it) {
        if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
            !entry["template"].is_string())
          throw Error(ErrorKind::format, file, "chat_template", "expected a list of {\"name\", \"template\"} strings");
        if (entry["name"] == "default") t.text = entry["template"].get<std::string>();
        if (entry["name"] == "tool_use") t.tool_use = entry["template"].get<std::string>();
      }
      if (t.text.empty()) throw Error(ErrorKind::format, file, "chat_template", "the list of templates has no \"default\"");
    } else {
      throw Error(ErrorKind::format, file, "chat_template", "expected a string or a list of named templates");
    }
    return t;
  };
  if (auto t = from_field(config, (dir / "tokenizer_config.json").string())) return t;
  if (auto processor = dir / "chat_template.json"; std::filesystem::is_regular_file(processor, ec))
    if (auto t = from_field(detail::read_json_file(processor), processor.string())) return t;
  return std::nullopt;
}

// The chat template of a GGUF file; null when it has none and `family`
// then says which built-in its tokens fit (other: none).
std::shared_ptr<const detail::JinjaChat> gguf_chat(const std::filesystem::path& path, ChatFormat& family) {
  detail::GgufFile gguf = detail::GgufFile::open(path);
  const std::string file = path.string();
  const auto* text = gguf.find("tokenizer.chat_template");
  if (!text) {
    family = ChatFormat::other;
    if (gguf.find("tokenizer.ggml.tokens"))
      for (const auto& t : gguf.get_string_array("tokenizer.ggml.tokens")) {
        if (t == "<|im_start|>") family = ChatFormat::chatml;
        if (t == "<|start_header_id|>") family = ChatFormat::llama3;
      }
    return nullptr;
  }
  ordered_json special = ordered_json::object();
  if (const auto* tokens = gguf.find("tokenizer.ggml.tokens")) {
    const std::pair<const char*, const char*> keys[] = {{"tokenizer.ggml.bos_token_id", "bos_token"},
                                                        {"tokenizer.ggml.eos_token_id", "eos_token"},
                                                        {"tokenizer.ggml.unknown_token_id", "unk_token"},
                                                        {"tokenizer.ggml.seperator_token_id", "sep_token"},
                                                        {"tokenizer.ggml.padding_token_id", "pad_token"}};
    for (const auto& [key, name] : keys)
      if (auto id = tokenizer::gguf_token_id(gguf, key)) special[name] = std::string(tokens->at(*id).as_string());
  }
  const auto* tool_use = gguf.find("tokenizer.chat_template.tool_use");
  return jinja_chat(std::string(text->as_string()), tool_use ? std::string(tool_use->as_string()) : "", file,
                    std::move(special));
}

std::string render_jinja(const detail::JinjaChat& chat, const ordered_json& messages, const ordered_json& tools,
                         const ordered_json& kwargs, bool add_generation_prompt) {
  // As apply_chat_template: render(messages=, tools=, documents=,
  // add_generation_prompt=, **special_tokens_map, **kwargs).
  ordered_json context = chat.special_tokens;
  for (const auto& [key, value] : kwargs.items()) context[key] = value;
  context["messages"] = messages;
  context["tools"] = tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  const bool with_tools = tools.is_array() && !tools.empty();
  const jinja::Template& t = with_tools && chat.tool_use ? *chat.tool_use : chat.main;
  return t.render(jinja::Value::from_json(context));
}

}  // namespace

ChatTemplate ChatTemplate::load(const std::filesystem::path& model) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(model, ec)) {
    ChatFormat family = ChatFormat::other;
    if (auto chat = gguf_chat(model, family)) return of_jinja(std::move(chat));
    if (family != ChatFormat::other) return of(family);
    throw Error(ErrorKind::unsupported, model.string(), "tokenizer.chat_template",
                "missing: the model has no chat template, and its tokens have neither ChatML's \"<|im_start|>\" "
                "nor Llama 3's \"<|start_header_id|>\" for a built-in one");
  }
  auto config_path = model / "tokenizer_config.json";
  const std::string file = config_path.string();
  nlohmann::json config = detail::read_json_file(config_path);
  if (auto t = folder_template(model, config)) {
    ordered_json special = ordered_json::object();
    add_special_tokens(config, special);
    if (auto map = model / "special_tokens_map.json"; std::filesystem::is_regular_file(map, ec))
      add_special_tokens(detail::read_json_file(map), special);
    return of_jinja(jinja_chat(std::move(t->text), t->tool_use, t->file, std::move(special)));
  }
  // No template: a built-in one when the vocabulary is of its family.
  // (A folder without a tokenizer.json fails later, where the tokenizer is read.)
  std::string vocabulary;
  if (auto vocab_file = model / "tokenizer.json"; std::filesystem::is_regular_file(vocab_file, ec))
    vocabulary = detail::read_file(vocab_file);
  if (contains(vocabulary, "\"<|im_start|>\"")) return of(ChatFormat::chatml);
  if (contains(vocabulary, "\"<|start_header_id|>\"")) return of(ChatFormat::llama3);
  throw Error(ErrorKind::unsupported, file, "chat_template",
              "missing: the model has no chat template, and its tokenizer.json has neither ChatML's \"<|im_start|>\" "
              "nor Llama 3's \"<|start_header_id|>\" for a built-in one");
}

ChatTemplate ChatTemplate::from_jinja(std::string_view source, std::string name,
                                      std::vector<std::pair<std::string, std::string>> special_tokens) {
  ordered_json special = ordered_json::object();
  for (auto& [key, value] : special_tokens) special[key] = std::move(value);
  return of_jinja(jinja_chat(std::string(source), "", name, std::move(special)));
}

ChatTemplate ChatTemplate::of_jinja(std::shared_ptr<const detail::JinjaChat> chat) {
  const std::string_view text = chat->source;
  const bool thinking = contains(text, "enable_thinking") || contains(text, "<think>");
  // Thinking-only templates (Qwen3 "Thinking-2507", our own model) open the
  // thought in the generation prompt: '<|im_start|>assistant\n<think>\n'.
  const bool opens_think = thinking && contains(text, "<|im_start|>assistant\\n<think>\\n'");
  return ChatTemplate(family_of(text), thinking, opens_think, std::move(chat));
}

ChatTemplate ChatTemplate::of(ChatFormat format) {
  if (format == ChatFormat::other)
    throw Error(ErrorKind::invalid_argument, "", "format", "there is a built-in template only for chatml and llama3");
  return ChatTemplate(format, format == ChatFormat::chatml, false, nullptr);
}

std::vector<std::string> ChatTemplate::stop_tokens() const {
  std::vector<std::string> out;
  if (format_ == ChatFormat::chatml) out = {"<|im_end|>", "<|endoftext|>"};
  else if (format_ == ChatFormat::llama3) out = {"<|eot_id|>", "<|end_of_text|>"};
  if (!jinja_) return out;
  auto add = [&](std::string t) {
    if (!t.empty() && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(std::move(t));
  };
  if (format_ == ChatFormat::other) {
    // Turn ends of other families, when the template writes them.
    for (std::string_view marker : {"<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|eot_id|>", "<|im_end|>",
                                    "<｜end▁of▁sentence｜>", "<|endoftext|>", "</s>"})
      if (contains(jinja_->source, marker)) add(std::string(marker));
  }
  if (auto eos = jinja_->special_tokens.find("eos_token"); eos != jinja_->special_tokens.end() && eos->is_string())
    add(eos->get<std::string>());
  return out;
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                 bool enable_thinking) const {
  if (jinja_) {
    ordered_json list = ordered_json::array();
    for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
    ordered_json kwargs = {{"enable_thinking", enable_thinking}};
    return render_jinja(*jinja_, list, nullptr, kwargs, add_generation_prompt);
  }
  if (format_ == ChatFormat::chatml) return render_chatml(messages, add_generation_prompt, enable_thinking);
  return render_llama3(messages, add_generation_prompt);
}

std::string ChatTemplate::render_json(std::string_view messages_json, const ChatRenderOptions& options) const {
  ordered_json messages = parse_argument(messages_json, "messages");
  if (!messages.is_array()) throw Error(ErrorKind::invalid_argument, "", "messages", "expected a JSON array of messages");
  ordered_json tools;  // null: none
  if (!options.tools_json.empty()) {
    tools = parse_argument(options.tools_json, "tools");
    if (!tools.is_array() && !tools.is_null())
      throw Error(ErrorKind::invalid_argument, "", "tools", "expected a JSON array of tool definitions");
  }
  ordered_json kwargs = ordered_json::object();
  if (!options.kwargs_json.empty()) {
    kwargs = parse_argument(options.kwargs_json, "kwargs");
    if (!kwargs.is_object()) throw Error(ErrorKind::invalid_argument, "", "kwargs", "expected a JSON object");
  }
  for (const char* reserved : {"messages", "tools", "documents", "add_generation_prompt"})
    if (kwargs.contains(reserved))
      throw Error(ErrorKind::invalid_argument, "", std::string("kwargs.") + reserved,
                  "is an argument of its own (apply_chat_template refuses it twice)");
  if (jinja_) return render_jinja(*jinja_, messages, tools, kwargs, options.add_generation_prompt);

  if (!tools.is_null() && !tools.empty())
    throw Error(ErrorKind::unsupported, "", "tools", "the built-in template has no format for tool definitions");
  bool thinking = true;
  if (auto it = kwargs.find("enable_thinking"); it != kwargs.end()) {
    if (!it->is_boolean()) throw Error(ErrorKind::invalid_argument, "", "kwargs.enable_thinking", "expected true or false");
    thinking = it->get<bool>();
  }
  std::vector<ChatMessage> plain = plain_messages(messages);
  return render(plain, options.add_generation_prompt, thinking);
}

// Follows Qwen3's template (without tool definitions).
std::string ChatTemplate::render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                        bool enable_thinking) const {
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw Error(ErrorKind::invalid_argument, "", "messages[" + std::to_string(i) + "].role",
                  "unknown role \"" + role + "\" (system, user, assistant or tool)");
  }
  std::string out;
  bool first_is_system = !messages.empty() && messages[0].role == "system";
  if (first_is_system) out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";

  // The last user message that is not a wrapped tool response: assistant
  // turns after it keep their reasoning (Qwen3's last_query_index).
  auto last_query = static_cast<ptrdiff_t>(messages.size()) - 1;
  for (auto i = static_cast<ptrdiff_t>(messages.size()) - 1; i >= 0; --i) {
    const auto& m = messages[static_cast<size_t>(i)];
    std::string_view c = m.content;
    bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (m.role == "user" && !tool_response) {
      last_query = i;
      break;
    }
  }

  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    bool last = i + 1 == messages.size();
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      if (!thinking_) {
        out += "<|im_start|>assistant\n" + m.content + "<|im_end|>\n";
        continue;
      }
      std::string_view content = m.content, reasoning;
      if (auto close = content.find("</think>"); close != std::string_view::npos) {
        // split('</think>')[-1] is after the last "</think>", [0] before the first.
        std::string_view before = content.substr(0, close);
        content = lstrip(content.substr(content.rfind("</think>") + 8), "\n");
        before = rstrip(before, "\n");
        if (auto open = before.rfind("<think>"); open != std::string_view::npos) before = before.substr(open + 7);
        reasoning = lstrip(before, "\n");
      }
      out += "<|im_start|>assistant\n";
      if (static_cast<ptrdiff_t>(i) > last_query && (last || !reasoning.empty())) {
        out += "<think>\n";
        out += strip(reasoning, "\n");
        out += "\n</think>\n\n";
        out += lstrip(content, "\n");
      } else {
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (last || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (thinking_ && !enable_thinking) out += "<think>\n\n</think>\n\n";
    else if (opens_think_) out += "<think>\n";
  }
  return out;
}

// Follows the Llama-3 template: BOS, then a header, the trimmed content and
// <|eot_id|> per message; no default system block.
std::string ChatTemplate::render_llama3(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::string out = "<|begin_of_text|>";
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role.empty())
      throw Error(ErrorKind::invalid_argument, "", "messages[" + std::to_string(i) + "].role", "must not be empty");
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
    out += strip(m.content, kWhitespace);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace musespark
