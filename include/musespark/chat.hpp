// musespark — chat templates for the two model families we run.
//
// We do not embed a Jinja engine: the ChatML family (Qwen3, Qwen2.5) and the
// Llama-3 header format are written in C++ and produce, for ordinary
// conversations (system / user / assistant / tool messages with text
// content, no tool definitions), the same string as the model's own
// `chat_template`:
//
//   chatml (Qwen3):  optional "<|im_start|>system\n...<|im_end|>\n", then
//                    "<|im_start|>role\ncontent<|im_end|>\n" per message.
//                    Assistant turns before the last user message lose their
//                    "<think>...</think>" reasoning; later ones keep it as
//                    "<think>\nreasoning\n</think>\n\n". The generation prompt
//                    is "<|im_start|>assistant\n", plus "<think>\n\n</think>\n\n"
//                    when enable_thinking is false, or "<think>\n" when it is
//                    true and the template opens the thought (opens_think()).
//   chatml (Qwen2.5 style, no thinking): as above without the reasoning rules;
//                    when the template has Qwen2.5's default system prompt and
//                    the conversation has no system message, it is added.
//   llama3:          "<|begin_of_text|>" then per message
//                    "<|start_header_id|>role<|end_header_id|>\n\n" +
//                    trimmed content + "<|eot_id|>"; generation prompt
//                    "<|start_header_id|>assistant<|end_header_id|>\n\n".
//
// Thread safety: a ChatTemplate is an immutable value; all methods are const
// and safe to call concurrently.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace musespark {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" (or "tool" for ChatML)
  std::string content;  // UTF-8 text
};

enum class ChatFormat { chatml, llama3 };

class ChatTemplate {
 public:
  // Detects the format from <model_dir>/tokenizer_config.json's chat_template
  // text: "<|im_start|>" -> chatml, "<|start_header_id|>" -> llama3.
  // Errors: Error{io}/Error{format} if the file is missing or malformed;
  // Error{unsupported} naming tokenizer_config.json and chat_template when
  // there is no template or it is of neither family.
  static ChatTemplate load(const std::filesystem::path& model_dir);

  // The built-in template of a family. chatml is Qwen3's (supports thinking).
  static ChatTemplate of(ChatFormat format);

  ChatFormat format() const { return format_; }

  // True for Qwen3-style templates (the template text mentions
  // enable_thinking or <think>): render() then honours enable_thinking and
  // strips reasoning from earlier assistant turns.
  bool supports_thinking() const { return thinking_; }

  // True for templates that open the thought themselves (Qwen3
  // "Thinking-2507" style: the generation prompt ends "<think>\n" when
  // thinking is on); the model then writes only the closing "</think>".
  bool opens_think() const { return opens_think_; }

  // The prompt text for `messages` (to be encoded with Tokenizer::encode,
  // which recognises the special tokens in it). With add_generation_prompt
  // the text ends with the assistant header, ready for generation.
  // enable_thinking matters only when supports_thinking().
  // Errors: Error{invalid_argument} for a role the format does not know
  // (chatml: system/user/assistant/tool; llama3: any non-empty role).
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt = true,
                     bool enable_thinking = true) const;

  // Token strings that end an assistant turn, first the turn end:
  // chatml {"<|im_end|>", "<|endoftext|>"}; llama3 {"<|eot_id|>", "<|end_of_text|>"}.
  std::vector<std::string> stop_tokens() const;

 private:
  ChatTemplate(ChatFormat format, bool thinking, std::string default_system, bool opens_think)
      : format_(format), thinking_(thinking), opens_think_(opens_think), default_system_(std::move(default_system)) {}
  std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt,
                            bool enable_thinking) const;
  std::string render_llama3(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  ChatFormat format_;
  bool thinking_;
  bool opens_think_;
  std::string default_system_;  // added when the conversation has none (Qwen2.5)
};

}  // namespace musespark
