#include "distill/tokenizer_files.hpp"

#include <fstream>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"
#include "musespark/error.hpp"
#include "tokenizer/utf8.hpp"

namespace musespark::detail {
namespace {

using Json = nlohmann::ordered_json;  // keys in the order HF writes them

// Qwen3's ChatML template without tool definitions, with the generation
// prompt of Qwen3-Thinking-2507 (the thought is opened for the model) and
// Qwen3's enable_thinking=false. Instead of Qwen3's reversed loop with a
// namespace, an assistant turn keeps its reasoning when a user message comes
// before it and none after it: Qwen3's last_query_index, except that a user
// message wrapping a <tool_response> counts as a query here. ChatTemplate::render writes the same text; the
// tests compare it with Python jinja2's rendering of this template
// (tests/distill/render_default_chat.py) and with transformers.js, whose
// Jinja parser is why each method call is a statement of its own.
constexpr std::string_view kChatTemplate = R"TEMPLATE({%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == 'user') or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in content %}
            {%- set parts = content.split('</think>') %}
            {%- set reasoning_content = parts[0] %}
            {%- set reasoning_content = reasoning_content.rstrip('\n') %}
            {%- set reasoning_content = reasoning_content.split('<think>') %}
            {%- set reasoning_content = reasoning_content[-1] %}
            {%- set reasoning_content = reasoning_content.lstrip('\n') %}
            {%- set content = parts[-1] %}
            {%- set content = content.lstrip('\n') %}
        {%- endif %}
        {%- set users_before = messages[:loop.index0] | selectattr('role', 'equalto', 'user') | list | length %}
        {%- set users_after = messages[loop.index0:] | selectattr('role', 'equalto', 'user') | list | length %}
        {%- if users_before > 0 and users_after == 0 and (loop.last or reasoning_content) %}
            {{- '<|im_start|>assistant\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or (messages[loop.index0 - 1].role != 'tool') %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<|im_start|>assistant\n<think>\n\n</think>\n\n' }}
    {%- else %}
        {{- '<|im_start|>assistant\n<think>\n' }}
    {%- endif %}
{%- endif %})TEMPLATE";

Json byte_level_step() {
  return Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
}

Json added_token_fields(const DefaultAddedToken& t) {
  return Json{{"content", t.content}, {"lstrip", false}, {"normalized", false},
              {"rstrip", false},      {"single_word", false}, {"special", t.special}};
}

Json tokenizer_json() {
  Json added = Json::array();
  for (const DefaultAddedToken& t : kDefaultAddedTokens)
    added.push_back(Json{{"id", t.id},       {"content", t.content}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false},  {"normalized", false},  {"special", t.special}});
  Json vocab = Json::object();
  for (int byte = 0; byte < 256; ++byte)
    vocab[tokenizer::bytes_to_byte_level(std::string(1, static_cast<char>(byte)))] = byte;
  return Json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level_step()},
      {"post_processor", byte_level_step()},
      {"decoder", byte_level_step()},
      {"model", Json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                     {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                     {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab},
                     {"merges", Json::array()}}},
  };
}

Json tokenizer_config_json() {
  Json decoder = Json::object(), specials = Json::array();
  for (const DefaultAddedToken& t : kDefaultAddedTokens) {
    decoder[std::to_string(t.id)] = added_token_fields(t);
    if (t.special && t.id != kEndOfTextId) specials.push_back(t.content);
  }
  return Json{
      {"add_bos_token", false},
      {"add_prefix_space", false},
      {"added_tokens_decoder", decoder},
      {"additional_special_tokens", specials},
      {"bos_token", nullptr},
      {"chat_template", kChatTemplate},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", "<|im_end|>"},
      {"errors", "replace"},
      {"pad_token", "<|endoftext|>"},
      {"split_special_tokens", false},
      {"tokenizer_class", "Qwen2Tokenizer"},
      {"unk_token", nullptr},
  };
}

void write_json(const std::filesystem::path& file, const Json& json) {
  write_file_atomically(file, json.dump(2) + "\n");
}

}  // namespace

void write_tokenizer_files(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw Error(ErrorKind::io, dir.string(), "", "cannot create the folder" + (ec ? ": " + ec.message() : ""));
  write_json(dir / "tokenizer.json", tokenizer_json());
  write_json(dir / "tokenizer_config.json", tokenizer_config_json());
}

}  // namespace musespark::detail
