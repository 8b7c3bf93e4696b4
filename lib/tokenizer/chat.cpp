#include "musespark/chat.hpp"

#include "common/json_file.hpp"
#include "musespark/error.hpp"

namespace musespark {

namespace {

constexpr std::string_view kQwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

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

}  // namespace

ChatTemplate ChatTemplate::load(const std::filesystem::path& model_dir) {
  auto path = model_dir / "tokenizer_config.json";
  const std::string file = path.string();
  nlohmann::json config = detail::read_json_file(path);
  std::string text;
  auto it = config.find("chat_template");
  if (it != config.end() && it->is_string()) {
    text = it->get<std::string>();
  } else if (it != config.end() && it->is_array()) {
    // A list of named templates: use "default".
    for (const auto& entry : *it)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        text = entry["template"].get<std::string>();
  } else if (it != config.end() && !it->is_null()) {
    throw Error(ErrorKind::format, file, "chat_template", "expected a string or a list of named templates");
  }
  if (text.empty()) throw Error(ErrorKind::unsupported, file, "chat_template", "missing: the model has no chat template");
  if (contains(text, "<|im_start|>")) {
    bool thinking = contains(text, "enable_thinking") || contains(text, "<think>");
    std::string default_system = contains(text, kQwen25DefaultSystem) ? std::string(kQwen25DefaultSystem) : "";
    // Thinking-only templates (Qwen3 "Thinking-2507", our own model) open the
    // thought in the generation prompt: '<|im_start|>assistant\n<think>\n'.
    bool opens_think = thinking && contains(text, "<|im_start|>assistant\\n<think>\\n'");
    return ChatTemplate(ChatFormat::chatml, thinking, std::move(default_system), opens_think);
  }
  if (contains(text, "<|start_header_id|>")) return ChatTemplate(ChatFormat::llama3, false, "", false);
  throw Error(ErrorKind::unsupported, file, "chat_template",
              "unknown template family (neither ChatML \"<|im_start|>\" nor Llama-3 \"<|start_header_id|>\")");
}

ChatTemplate ChatTemplate::of(ChatFormat format) {
  return ChatTemplate(format, format == ChatFormat::chatml, "", false);
}

std::vector<std::string> ChatTemplate::stop_tokens() const {
  if (format_ == ChatFormat::chatml) return {"<|im_end|>", "<|endoftext|>"};
  return {"<|eot_id|>", "<|end_of_text|>"};
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                 bool enable_thinking) const {
  if (format_ == ChatFormat::chatml) return render_chatml(messages, add_generation_prompt, enable_thinking);
  return render_llama3(messages, add_generation_prompt);
}

// Follows Qwen3's template (without tool definitions); Qwen2.5's is the same
// without the reasoning rules, plus its default system prompt.
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
  else if (!default_system_.empty()) out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";

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
