// musespark serve: the Chat Completions request body as an engine Request.
#include <doctest/doctest.h>

#include <string>

#include "musespark/image.hpp"
#include "serve/api_error.hpp"
#include "serve/chat_request.hpp"

using namespace musespark;
using namespace musespark::serve;

namespace {

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = bytes[i] << 16 | (i + 1 < bytes.size() ? bytes[i + 1] << 8 : 0) | (i + 2 < bytes.size() ? bytes[i + 2] : 0);
    out += digits[v >> 18 & 63];
    out += digits[v >> 12 & 63];
    out += i + 1 < bytes.size() ? digits[v >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? digits[v & 63] : '=';
  }
  return out;
}

// The ApiError a body gets.
ApiError error_of(const std::string& body) {
  try {
    parse_chat_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("accepted: " << body);
  return ApiError::invalid("", "");
}

const std::string kHello = R"("messages": [{"role": "user", "content": "hi"}])";

}  // namespace

TEST_CASE("serve: a chat request maps onto the engine's request") {
  ChatRequest c = parse_chat_request(R"({
    "model": "tiny",
    "messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "6*7?"}]},
      {"role": "assistant", "content": null, "reasoning_content": "r", "tool_calls": []},
      {"role": "user", "content": "Sure?", "name": "ann"}
    ],
    "mode": "contemplating", "reasoning_effort": "high",
    "max_completion_tokens": 900, "temperature": 0.5, "seed": 42, "n": 3, "stop": ["\n\n", "END"],
    "stream": true, "stream_options": {"include_usage": true},
    "user": "u1", "metadata": {"a": "b"}, "frequency_penalty": 0, "tools": [], "logprobs": false, "top_p": null,
    "musespark": {"trace": true, "agents": 5, "refine_agents": 3, "max_thinking_tokens": 64, "max_answer_tokens": 16,
                  "deadline_ms": 5000, "early_stop": false, "consensus_stop": false, "warmup_first": false,
                  "aggregator": true, "token_confidence": true, "max_zooms": 1, "assistant_prefix": "<zoom>",
                  "consensus_share": 0.6, "scatter_stop": 5}
  })");
  CHECK(c.model == "tiny");
  const Request& r = c.request;
  REQUIRE(r.messages.size() == 4);
  CHECK(r.messages[0].role == "system");
  CHECK(r.messages[1].joined_text() == "What is 6*7?");
  CHECK(r.messages[2].role == "assistant");
  CHECK(r.messages[2].joined_text() == "");
  CHECK(r.messages[3].joined_text() == "Sure?");
  CHECK(r.mode == Mode::contemplating);
  CHECK(r.effort == Effort::high);
  CHECK(r.budgets.max_total_tokens == 900);
  CHECK(r.budgets.agents == 5);
  CHECK(r.budgets.refine_agents == 3);
  CHECK(r.budgets.max_thinking_tokens == 64);
  CHECK(r.budgets.max_answer_tokens == 16);
  CHECK(r.budgets.deadline_ms == 5000);
  REQUIRE(r.sampling.has_value());
  CHECK(r.sampling->temperature == doctest::Approx(0.5));
  CHECK(r.sampling->top_p == doctest::Approx(0.95));
  CHECK_FALSE(r.early_stop);
  CHECK_FALSE(r.consensus_stop);
  CHECK_FALSE(r.warmup_first);
  CHECK(r.aggregator);
  CHECK(r.record_token_confidence);
  CHECK(r.max_zooms == 1);
  CHECK(r.assistant_prefix == "<zoom>");
  CHECK(r.consensus_share == doctest::Approx(0.6));
  CHECK(r.scatter_stop == 5);
  CHECK(c.seed == 42u);
  CHECK(c.n == 3);
  CHECK(c.stop == std::vector<std::string>{"\n\n", "END"});
  CHECK(c.stream);
  CHECK(c.include_usage);
  CHECK(c.trace);
}

TEST_CASE("serve: defaults, legacy max_tokens, effort none and negative seeds") {
  ChatRequest plain = parse_chat_request("{" + kHello + "}");
  CHECK(plain.model.empty());
  CHECK(plain.request.mode == Mode::automatic);
  CHECK(plain.request.effort == Effort::medium);
  CHECK_FALSE(plain.request.sampling.has_value());  // the engine's own defaults
  CHECK_FALSE(plain.seed.has_value());
  CHECK(plain.n == 1);
  CHECK_FALSE(plain.stream);
  CHECK_FALSE(plain.trace);

  ChatRequest legacy = parse_chat_request("{" + kHello + R"(, "max_tokens": 77, "stop": "x", "top_p": 0.5})");
  CHECK(legacy.request.budgets.max_total_tokens == 77);
  CHECK(legacy.stop == std::vector<std::string>{"x"});
  REQUIRE(legacy.request.sampling.has_value());
  CHECK(legacy.request.sampling->temperature == doctest::Approx(0.7));  // auto samples its agents
  CHECK(legacy.request.sampling->top_p == doctest::Approx(0.5));

  ChatRequest none = parse_chat_request("{" + kHello + R"(, "reasoning_effort": "none", "temperature": 0.2})");
  CHECK(none.request.mode == Mode::instant);
  CHECK(none.request.sampling->top_p == doctest::Approx(0.95));

  ChatRequest instant = parse_chat_request("{" + kHello + R"(, "mode": "instant", "top_p": 0.9})");
  CHECK(instant.request.sampling->temperature == 0);  // greedy unless asked

  CHECK(parse_chat_request("{" + kHello + R"(, "seed": -1})").seed == UINT64_MAX);
  CHECK(parse_chat_request("{" + kHello + R"(, "seed": 18446744073709551615})").seed == UINT64_MAX);
}

TEST_CASE("serve: bad requests get a 400 naming the parameter") {
  struct Case {
    std::string body, param, code;
  };
  const Case cases[] = {
      {"", "", "invalid_json"},
      {"{\"messages\": [", "", "invalid_json"},
      {"[1, 2]", "", "invalid_json"},
      {std::string(40, '[') + std::string(40, ']'), "", "invalid_json"},
      {"{}", "messages", "missing_required_parameter"},
      {R"({"messages": []})", "messages", "invalid_value"},
      {R"({"messages": "hi"})", "messages", "invalid_type"},
      {R"({"messages": [{"content": "hi"}]})", "messages[0].role", "missing_required_parameter"},
      {R"({"messages": [{"role": "robot", "content": "hi"}]})", "messages[0].role", "invalid_value"},
      {R"({"messages": [{"role": "tool", "content": "hi"}]})", "messages[0].role", "unsupported_parameter"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content", "missing_required_parameter"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": "hi", "colour": 1}]})", "messages[0].colour", "unknown_parameter"},
      {R"({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})", "messages[0].content[0].type",
       "unsupported_parameter"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})",
       "messages[0].content[0].image_url.url", "unsupported_value"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}]})",
       "messages[0].content[0].image_url.url", "invalid_value"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]})",
       "messages[0].content[0].image_url.url", "invalid_image"},
      {R"({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]})",
       "messages[0].content[0]", "unsupported_parameter"},
      {"{" + kHello + R"(, "temperature": "hot"})", "temperature", "invalid_type"},
      {"{" + kHello + R"(, "temperature": 3})", "temperature", "invalid_value"},
      {"{" + kHello + R"(, "top_p": 0})", "top_p", "invalid_value"},
      {"{" + kHello + R"(, "n": 0})", "n", "invalid_value"},
      {"{" + kHello + R"(, "n": 9})", "n", "invalid_value"},
      {"{" + kHello + R"(, "n": 1.5})", "n", "invalid_type"},
      {"{" + kHello + R"(, "seed": 1.5})", "seed", "invalid_type"},
      {"{" + kHello + R"(, "max_completion_tokens": 0})", "max_completion_tokens", "invalid_value"},
      {"{" + kHello + R"(, "max_completion_tokens": 5, "max_tokens": 6})", "max_tokens", "invalid_value"},
      {"{" + kHello + R"(, "stop": ["a", "b", "c", "d", "e"]})", "stop", "invalid_value"},
      {"{" + kHello + R"(, "stop": [""]})", "stop", "invalid_value"},
      {"{" + kHello + R"(, "reasoning_effort": "extreme"})", "reasoning_effort", "invalid_value"},
      {"{" + kHello + R"(, "reasoning_effort": "none", "mode": "thinking"})", "reasoning_effort", "invalid_value"},
      {"{" + kHello + R"(, "mode": "dreaming"})", "mode", "invalid_value"},
      {"{" + kHello + R"(, "logprobs": true})", "logprobs", "unsupported_parameter"},
      {"{" + kHello + R"(, "top_logprobs": 3})", "top_logprobs", "unsupported_parameter"},
      {"{" + kHello + R"(, "stream_options": {"include_usage": true}})", "stream_options", "invalid_value"},
      {"{" + kHello + R"(, "stream": true, "stream_options": {"usage": true}})", "stream_options.usage", "unknown_parameter"},
      {"{" + kHello + R"(, "presence_penalty": 0.5})", "presence_penalty", "unsupported_parameter"},
      {"{" + kHello + R"(, "tools": [{"type": "function"}]})", "tools", "unsupported_parameter"},
      {"{" + kHello + R"(, "response_format": {"type": "json_object"}})", "response_format", "unsupported_parameter"},
      {"{" + kHello + R"(, "store": true})", "store", "unsupported_parameter"},
      {"{" + kHello + R"(, "audio": {}})", "audio", "unsupported_parameter"},
      {"{" + kHello + R"(, "frobnicate": 1})", "frobnicate", "unknown_parameter"},
      {"{" + kHello + R"(, "musespark": {"agents": 0}})", "musespark.agents", "invalid_value"},
      {"{" + kHello + R"(, "musespark": {"scatter_stop": 1}})", "musespark.scatter_stop", "invalid_value"},
      {"{" + kHello + R"(, "musespark": {"scatter_stop": 65}})", "musespark.scatter_stop", "invalid_value"},
      {"{" + kHello + R"(, "musespark": {"trace": "yes"}})", "musespark.trace", "invalid_type"},
      {"{" + kHello + R"(, "musespark": {"secret": 1}})", "musespark.secret", "unknown_parameter"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body);
    ApiError e = error_of(c.body);
    CHECK(e.status() == 400);
    CHECK(e.type() == "invalid_request_error");
    CHECK(e.param() == c.param);
    CHECK(e.code() == c.code);
    CHECK(std::string(e.what()).size() > 5);
  }
  // The error object's JSON.
  CHECK(error_of("{\"n\": 1}").body() ==
        R"({"error":{"message":"messages: missing required parameter","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}})");
}

TEST_CASE("serve: images come as base64 data URLs, checked and decoded") {
  std::vector<uint8_t> rgb(5 * 3 * 3, 200);
  const std::vector<uint8_t> png = Image::from_rgb(rgb, 5, 3).encode_png();
  const std::string url = "data:image/png;base64," + base64(png);
  ChatRequest c = parse_chat_request(R"({"messages": [{"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": ")" + url + R"(", "detail": "high"}},
      {"type": "text", "text": "What is this?"}]}]})");
  const Message& m = c.request.messages.at(0);
  REQUIRE(m.parts.size() == 2);
  REQUIRE(m.parts[0].kind == Part::Kind::image);
  CHECK(m.parts[0].image->width() == 5);
  CHECK(m.parts[0].image->height() == 3);
  CHECK(m.parts[1].text == "What is this?");

  // Over the image limits, and over the image count.
  RequestLimits limits;
  limits.images.max_width = 4;
  try {
    parse_chat_request(R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ")" + url +
                           R"("}}]}]})", limits);
    FAIL("accepted an image over the limits");
  } catch (const ApiError& e) {
    CHECK(e.code() == "invalid_image");
    CHECK(std::string(e.what()).find("messages[0].content[0].image_url.url") != std::string::npos);
  }
  limits = {};
  limits.max_images = 1;
  const std::string part = R"({"type": "image_url", "image_url": {"url": ")" + url + R"("}})";
  CHECK_THROWS_AS(parse_chat_request(R"({"messages": [{"role": "user", "content": [)" + part + "," + part + "]}]}", limits),
                  ApiError);
}

TEST_CASE("serve: base64 and choice seeds") {
  auto text = [](std::string_view s) {
    auto bytes = decode_base64(s);
    REQUIRE(bytes.has_value());
    return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  };
  CHECK(text("") == "");
  CHECK(text("Zg==") == "f");
  CHECK(text("Zm8=") == "fo");
  CHECK(text("Zm9v") == "foo");
  CHECK(text("Zm9vYg") == "foob");  // padding is optional
  CHECK(text("Zm9v\nYmFy") == "foobar");
  CHECK_FALSE(decode_base64("Zm9v!").has_value());
  CHECK_FALSE(decode_base64("Z").has_value());
  CHECK_FALSE(decode_base64("Zg==Zg==").has_value());

  CHECK(choice_seed(7, 0) == 7);
  CHECK(choice_seed(7, 1) != 8);  // agents of one run use consecutive seeds: choices must not
  CHECK(choice_seed(7, 1) != choice_seed(7, 2));
  CHECK(choice_seed(7, 1) == choice_seed(7, 1));
}
