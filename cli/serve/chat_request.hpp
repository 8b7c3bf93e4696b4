// musespark serve — the body of POST /v1/chat/completions (OpenAI's Chat
// Completions request) as an engine Request.
//
// Strict by design: a field this server does not know is an error (as
// OpenAI's API does: "Unrecognized request argument supplied"), a field it
// knows but cannot honour (tools, logprobs, penalties) is an error unless it
// holds the value that means "off", and a few fields that change nothing
// (user, metadata, service_tier, ...) are accepted and ignored. docs/server.md
// lists every field and what it maps to.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "musespark/image.hpp"
#include "musespark/request.hpp"

namespace musespark::serve {

struct ChatRequest {
  std::string model;                  // "" when the body names none
  Request request;                    // what the engine runs; its seed is set by the caller (below)
  std::optional<uint64_t> seed;       // `seed`, when given
  int32_t n = 1;                      // choices, each a separate run of the engine
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  std::vector<std::string> stop;      // up to 4 strings that end the content
  bool trace = false;                 // musespark.trace: the reasoning trace in each choice
};

struct RequestLimits {
  int32_t max_n = 8;
  int32_t max_images = 8;
  ImageLimits images;
};

// Parses and checks a request body. Throws ApiError (400,
// invalid_request_error) naming the parameter, e.g. "messages[1].content[0].image_url":
// malformed JSON, a wrong type, a value out of range, an unknown or
// unsupported parameter, an image that is not a PNG/JPEG data URL.
ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits = {});

// The seed of choice `index` of a request seeded with `seed`: `seed` itself
// for choice 0, a well-mixed derivative for the others, so that choices do
// not share agent seeds (agents of one run use consecutive seeds).
uint64_t choice_seed(uint64_t seed, int32_t index);

// The bytes of a base64 string (standard alphabet, padding optional,
// whitespace ignored); nullopt if it is not base64.
std::optional<std::vector<std::byte>> decode_base64(std::string_view text);

}  // namespace musespark::serve
