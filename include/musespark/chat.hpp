// musespark — chat templates: the model's own Jinja template, rendered as
// transformers' apply_chat_template renders it, or a built-in one.
//
// A model folder's template is, in this order: chat_template.jinja,
// tokenizer_config.json's "chat_template" (a string, or a list of named
// templates: "default", or "tool_use" when tools are given), or
// chat_template.json's "chat_template" (vision-language processors). A GGUF
// file's is tokenizer.chat_template (tokenizer.chat_template.tool_use with
// tools). It is rendered by musespark's Jinja interpreter
// (lib/tokenizer/jinja.hpp, byte for byte as jinja2 in HF's sandbox) with
// the variables HF passes: messages, tools (None without), documents (None),
// add_generation_prompt, the special tokens (bos_token, eos_token,
// unk_token, pad_token, ...: tokenizer_config.json, then
// special_tokens_map.json; in a GGUF the tokens tokenizer.ggml.*_token_id
// name), and keyword arguments (enable_thinking, ...), which override them.
//
// Built-in templates, for folders without one (ChatTemplate::of, and load()
// when the folder has no template but its tokenizer.json has "<|im_start|>"
// or "<|start_header_id|>"): for ordinary conversations (system / user /
// assistant / tool messages with text content, no tool definitions) they
// produce the same string as the model families' own templates:
//
//   chatml (Qwen3):  optional "<|im_start|>system\n...<|im_end|>\n", then
//                    "<|im_start|>role\ncontent<|im_end|>\n" per message.
//                    Assistant turns before the last user message lose their
//                    "<think>...</think>" reasoning; later ones keep it as
//                    "<think>\nreasoning\n</think>\n\n". The generation prompt
//                    is "<|im_start|>assistant\n", plus "<think>\n\n</think>\n\n"
//                    when enable_thinking is false.
//   llama3:          "<|begin_of_text|>" then per message
//                    "<|start_header_id|>role<|end_header_id|>\n\n" +
//                    trimmed content + "<|eot_id|>"; generation prompt
//                    "<|start_header_id|>assistant<|end_header_id|>\n\n".
//
// Thread safety: a ChatTemplate is an immutable value (copies share the
// parsed template); all methods are const and safe to call concurrently.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace musespark {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" (or "tool" for ChatML)
  std::string content;  // UTF-8 text
};

// The family a template belongs to (its stop tokens and thinking markers):
// "<|im_start|>" -> chatml, "<|start_header_id|>" -> llama3, else other.
enum class ChatFormat { chatml, llama3, other };

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  // A JSON array of tool definitions (OpenAI style). Empty: none, the
  // template sees tools = None.
  std::string tools_json;
  // A JSON object of more template variables (enable_thinking,
  // reasoning_effort, bos_token, ...); they override the special tokens.
  std::string kwargs_json;
};

namespace detail {
struct JinjaChat;  // the parsed Jinja template(s) and the special tokens
}

class ChatTemplate {
 public:
  // The template of a model: a folder (see the top of this file) or a .gguf
  // file. Errors: Error{io}/Error{format} naming the file for one that cannot
  // be read or parsed, Error{format} naming the file, the field
  // "chat_template" and the line for a template with a syntax error,
  // Error{unsupported} naming the file and chat_template when there is no
  // template and no built-in fits.
  static ChatTemplate load(const std::filesystem::path& model);

  // A Jinja template from its text; `name` stands for its file in errors.
  // special_tokens: variables such as {"bos_token", "<s>"}.
  // Errors: Error{format} "line N: ..." naming `name` and chat_template.
  static ChatTemplate from_jinja(std::string_view source, std::string name,
                                 std::vector<std::pair<std::string, std::string>> special_tokens = {});

  // The built-in template of a family (chatml or llama3; chatml is Qwen3's,
  // with thinking). Error{invalid_argument} for ChatFormat::other.
  static ChatTemplate of(ChatFormat format);

  ChatFormat format() const { return format_; }
  // True when the model's own (Jinja) template renders, false for a built-in.
  bool is_jinja() const { return jinja_ != nullptr; }

  // True for templates that mention enable_thinking or <think> (Qwen3,
  // DeepSeek-R1 style): they honour enable_thinking.
  bool supports_thinking() const { return thinking_; }

  // True for templates that open the thought themselves (Qwen3
  // "Thinking-2507" style: the generation prompt ends "<think>\n" when
  // thinking is on); the model then writes only the closing "</think>".
  bool opens_think() const { return opens_think_; }

  // The prompt text for `messages` (to be encoded with Tokenizer::encode,
  // which recognises the special tokens in it). With add_generation_prompt
  // the text ends with the assistant header, ready for generation.
  // enable_thinking is passed to the template (built-in: it matters only
  // when supports_thinking()).
  // Errors: Error{invalid_argument} for a role a built-in format does not
  // know (chatml: system/user/assistant/tool; llama3: any non-empty role) or
  // a conversation the template refuses (its raise_exception); Error{format}
  // "line N: ..." for a template that fails while rendering.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt = true,
                     bool enable_thinking = true) const;

  // The same for messages as JSON (an array of objects with role, content
  // and whatever else the template reads: tool_calls, reasoning_content,
  // content as a list of parts, ...), with tools and keyword arguments.
  // The built-in templates take text content (a string, or text parts) and
  // no tools. Errors: as render(), and Error{invalid_argument} naming
  // "messages", "tools" or "kwargs" for JSON that is malformed or of the
  // wrong shape, or for a keyword that HF's call would refuse
  // (messages, tools, documents, add_generation_prompt).
  std::string render_json(std::string_view messages_json, const ChatRenderOptions& options = {}) const;

  // Token strings that end an assistant turn, first the turn end:
  // chatml {"<|im_end|>", "<|endoftext|>"}; llama3 {"<|eot_id|>", "<|end_of_text|>"};
  // other: the turn-end markers its template writes (<|end|>, <|return|>,
  // <end_of_turn>, ...). A Jinja template's eos_token is added when not among them.
  std::vector<std::string> stop_tokens() const;

 private:
  ChatTemplate(ChatFormat format, bool thinking, bool opens_think, std::shared_ptr<const detail::JinjaChat> jinja)
      : format_(format), thinking_(thinking), opens_think_(opens_think), jinja_(std::move(jinja)) {}
  std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt,
                            bool enable_thinking) const;
  std::string render_llama3(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  static ChatTemplate of_jinja(std::shared_ptr<const detail::JinjaChat> chat);

  ChatFormat format_;
  bool thinking_;
  bool opens_think_;
  std::shared_ptr<const detail::JinjaChat> jinja_;  // null: a built-in
};

}  // namespace musespark
