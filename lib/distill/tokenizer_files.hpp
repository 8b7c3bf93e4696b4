// The tokenizer of the default model, written as the HF files every model
// folder has (DESIGN.md "Models and files"), so that our own model loads
// through the same code path as Qwen3 (Tokenizer::load, ChatTemplate::load).
//
// Byte-level BPE without merges: the vocabulary is GPT-2's 256-character
// byte-level alphabet with id = byte value, so plain text is one token per
// byte (the model is tiny and its curriculum is short symbolic text; a byte
// vocabulary keeps the embedding small and every number learnable digit by
// digit). Then twelve added tokens: the ChatML and vision markers (special:
// decode(skip_special) drops them) and the reasoning tags (not special:
// they decode as text, so the engine and the answer extractor see them).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace musespark::detail {

inline constexpr int32_t kEndOfTextId = 256;     // <|endoftext|>     special (pad)
inline constexpr int32_t kImStartId = 257;       // <|im_start|>      special
inline constexpr int32_t kImEndId = 258;         // <|im_end|>        special (eos)
inline constexpr int32_t kThinkId = 259;         // <think>
inline constexpr int32_t kThinkEndId = 260;      // </think>
inline constexpr int32_t kBoxId = 261;           // <box>
inline constexpr int32_t kBoxEndId = 262;        // </box>
inline constexpr int32_t kZoomId = 263;          // <zoom>
inline constexpr int32_t kZoomEndId = 264;       // </zoom>
inline constexpr int32_t kVisionStartId = 265;   // <|vision_start|>  special
inline constexpr int32_t kVisionEndId = 266;     // <|vision_end|>    special
inline constexpr int32_t kImagePadId = 267;      // <|image_pad|>     special
inline constexpr int32_t kDefaultVocabSize = 268;

struct DefaultAddedToken {
  int32_t id;
  std::string_view content;
  bool special;
};
// The added tokens above, in id order (ids 256..267).
inline constexpr DefaultAddedToken kDefaultAddedTokens[] = {
    {kEndOfTextId, "<|endoftext|>", true},   {kImStartId, "<|im_start|>", true},
    {kImEndId, "<|im_end|>", true},          {kThinkId, "<think>", false},
    {kThinkEndId, "</think>", false},        {kBoxId, "<box>", false},
    {kBoxEndId, "</box>", false},            {kZoomId, "<zoom>", false},
    {kZoomEndId, "</zoom>", false},          {kVisionStartId, "<|vision_start|>", true},
    {kVisionEndId, "<|vision_end|>", true},  {kImagePadId, "<|image_pad|>", true},
};

// Writes <dir>/tokenizer.json and <dir>/tokenizer_config.json (creating
// `dir` if needed, replacing existing files). tokenizer_config.json has eos
// <|im_end|>, pad <|endoftext|>, no bos, and a ChatML chat_template in the
// style of Qwen3-Thinking-2507: the generation prompt opens the thought
// ("<|im_start|>assistant\n<think>\n"), or writes the empty thought
// "<think>\n\n</think>\n\n" when enable_thinking is false. ChatTemplate::load
// detects it as chatml with thinking and opens_think.
// The output is the same bytes on every call. Thread-safe if no two calls
// write the same `dir` at once. Errors: Error{io} naming the file or folder
// that could not be created or written.
void write_tokenizer_files(const std::filesystem::path& dir);

}  // namespace musespark::detail
