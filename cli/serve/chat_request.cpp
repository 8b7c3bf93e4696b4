#include "serve/chat_request.hpp"

#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "musespark/error.hpp"
#include "serve/api_error.hpp"

namespace musespark::serve {
namespace {

using Json = nlohmann::json;

constexpr int kMaxDepth = 32;  // deeper JSON is refused before it is built

Json parse_body(std::string_view body) {
  if (body.empty()) throw ApiError::invalid("", "the request body is empty: send a JSON object", "invalid_json");
  try {
    return Json::parse(body, [](int depth, Json::parse_event_t, Json&) {
      if (depth > kMaxDepth)
        throw ApiError::invalid("", fmt::format("the JSON is nested deeper than {} levels", kMaxDepth), "invalid_json");
      return true;
    });
  } catch (const Json::exception& e) {
    throw ApiError::invalid("", std::string("the request body is not valid JSON: ") + e.what(), "invalid_json");
  }
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const Json& v) {
  throw ApiError::invalid(param, fmt::format("{}: expected {}, got {}", param, expected, v.type_name()), "invalid_type");
}

[[noreturn]] void unsupported(const std::string& param, const std::string& why) {
  throw ApiError::invalid(param, fmt::format("{}: {}", param, why), "unsupported_parameter");
}

bool as_bool(const Json& v, const std::string& param) {
  if (!v.is_boolean()) wrong_type(param, "a boolean", v);
  return v.get<bool>();
}

std::string as_string(const Json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, "a string", v);
  return v.get<std::string>();
}

int64_t as_int(const Json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) wrong_type(param, "an integer", v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    throw ApiError::invalid(param, fmt::format("{}: must be at most {}", param, hi));
  const int64_t x = v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  if (x < lo || x > hi) throw ApiError::invalid(param, fmt::format("{}: must be from {} to {}, got {}", param, lo, hi, x));
  return x;
}

// A number in [lo, hi] (or (lo, hi] when lo_open).
double as_number(const Json& v, const std::string& param, double lo, double hi, bool lo_open = false) {
  if (!v.is_number()) wrong_type(param, "a number", v);
  const double x = v.get<double>();
  if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
    throw ApiError::invalid(param, fmt::format("{}: must be {}{}, {}], got {}", param, lo_open ? "in (" : "in [", lo, hi, x));
  return x;
}

void expect_object(const Json& v, const std::string& param) {
  if (!v.is_object()) wrong_type(param, "an object", v);
}

// Throws for a key of object `v` that is not in `known`.
void known_keys(const Json& v, const std::string& param, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : v.items()) {
    bool ok = false;
    for (auto k : known) ok = ok || key == k;
    if (!ok) {
      const std::string where = param.empty() ? key : param + "." + key;
      throw ApiError::invalid(where, "Unrecognized request argument supplied: " + where, "unknown_parameter");
    }
  }
}

Image image_from_data_url(const std::string& url, const std::string& param, const ImageLimits& limits) {
  if (url.rfind("data:", 0) != 0)
    throw ApiError::invalid(param, param + ": only data URLs (data:image/png;base64,...) are accepted; this server does "
                                   "not fetch images", "unsupported_value");
  const size_t comma = url.find(',');
  const std::string_view header = std::string_view(url).substr(5, comma == std::string::npos ? 0 : comma - 5);
  if (comma == std::string::npos || header.rfind("image/", 0) != 0 || header.size() < 7 ||
      header.substr(header.size() - 7) != ";base64")
    throw ApiError::invalid(param, param + ": expected data:image/<png|jpeg>;base64,<data>");
  auto bytes = decode_base64(std::string_view(url).substr(comma + 1));
  if (!bytes) throw ApiError::invalid(param, param + ": the data is not valid base64");
  try {
    return Image::decode(*bytes, param, limits);
  } catch (const Error& e) {
    throw ApiError::invalid(param, e.what(), "invalid_image");
  }
}

// One message's content: a string, or an array of text and image_url parts.
std::vector<Part> parse_content(const Json& v, const std::string& param, bool images_allowed, int32_t& images_left,
                                const RequestLimits& limits) {
  std::vector<Part> parts;
  if (v.is_string()) {
    parts.push_back(Part::of_text(v.get<std::string>()));
    return parts;
  }
  if (!v.is_array()) wrong_type(param, "a string or an array of content parts", v);
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string p = fmt::format("{}[{}]", param, i);
    const Json& part = v[i];
    expect_object(part, p);
    if (!part.contains("type")) throw ApiError::invalid(p + ".type", p + ".type: missing", "missing_required_parameter");
    const std::string type = as_string(part["type"], p + ".type");
    if (type == "text") {
      known_keys(part, p, {"type", "text"});
      if (!part.contains("text")) throw ApiError::invalid(p + ".text", p + ".text: missing", "missing_required_parameter");
      parts.push_back(Part::of_text(as_string(part["text"], p + ".text")));
    } else if (type == "image_url") {
      known_keys(part, p, {"type", "image_url"});
      if (!images_allowed) unsupported(p, "images are accepted in user messages only");
      if (--images_left < 0) unsupported(p, fmt::format("at most {} images per request", limits.max_images));
      const std::string ip = p + ".image_url";
      if (!part.contains("image_url")) throw ApiError::invalid(ip, ip + ": missing", "missing_required_parameter");
      const Json& image = part["image_url"];
      expect_object(image, ip);
      known_keys(image, ip, {"url", "detail"});
      if (!image.contains("url")) throw ApiError::invalid(ip + ".url", ip + ".url: missing", "missing_required_parameter");
      if (image.contains("detail")) as_string(image["detail"], ip + ".detail");  // every image is seen whole
      parts.push_back(Part::of_image(image_from_data_url(as_string(image["url"], ip + ".url"), ip + ".url", limits.images)));
    } else {
      unsupported(p + ".type", "\"" + type + "\" parts are not supported (text and image_url are)");
    }
  }
  return parts;
}

std::vector<Message> parse_messages(const Json& v, const RequestLimits& limits) {
  if (!v.is_array()) wrong_type("messages", "an array", v);
  if (v.empty()) throw ApiError::invalid("messages", "messages: must not be empty");
  std::vector<Message> messages;
  int32_t images_left = limits.max_images;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string p = fmt::format("messages[{}]", i);
    const Json& m = v[i];
    expect_object(m, p);
    if (!m.contains("role")) throw ApiError::invalid(p + ".role", p + ".role: missing", "missing_required_parameter");
    Message message;
    message.role = as_string(m["role"], p + ".role");
    if (message.role == "developer") message.role = "system";  // OpenAI's newer name for it
    if (message.role == "tool" || message.role == "function")
      unsupported(p + ".role", "\"" + message.role + "\" messages are not supported: this server has no tools");
    if (message.role != "system" && message.role != "user" && message.role != "assistant")
      throw ApiError::invalid(p + ".role", p + ".role: expected system, developer, user or assistant, got \"" +
                                               message.role + "\"");
    const bool assistant = message.role == "assistant";
    if (assistant) {
      // Clients send back what they received; the chat template drops earlier reasoning anyway.
      known_keys(m, p, {"role", "content", "name", "reasoning_content", "refusal", "tool_calls"});
      if (m.contains("tool_calls") && !m["tool_calls"].is_null() && !(m["tool_calls"].is_array() && m["tool_calls"].empty()))
        unsupported(p + ".tool_calls", "this server has no tools");
    } else {
      known_keys(m, p, {"role", "content", "name"});
    }
    if (m.contains("name")) as_string(m["name"], p + ".name");
    const bool has_content = m.contains("content") && !m["content"].is_null();
    if (!has_content && !assistant)
      throw ApiError::invalid(p + ".content", p + ".content: missing", "missing_required_parameter");
    if (has_content) message.parts = parse_content(m["content"], p + ".content", message.role == "user", images_left, limits);
    if (message.parts.empty()) message.parts.push_back(Part::of_text(""));
    messages.push_back(std::move(message));
  }
  return messages;
}

void parse_extension(const Json& v, ChatRequest& out) {
  expect_object(v, "musespark");
  known_keys(v, "musespark",
             {"trace", "agents", "refine_agents", "max_thinking_tokens", "max_answer_tokens", "deadline_ms", "early_stop",
              "consensus_stop", "consensus_share", "scatter_stop", "warmup_first", "aggregator", "token_confidence", "max_zooms", "assistant_prefix"});
  Request& r = out.request;
  for (const auto& [key, value] : v.items()) {
    if (value.is_null()) continue;
    const std::string p = "musespark." + key;
    if (key == "trace") out.trace = as_bool(value, p);
    else if (key == "agents") r.budgets.agents = static_cast<int32_t>(as_int(value, p, 1, 64));
    else if (key == "refine_agents") r.budgets.refine_agents = static_cast<int32_t>(as_int(value, p, 1, 64));
    else if (key == "max_thinking_tokens") r.budgets.max_thinking_tokens = static_cast<int32_t>(as_int(value, p, 1, 1 << 20));
    else if (key == "max_answer_tokens") r.budgets.max_answer_tokens = static_cast<int32_t>(as_int(value, p, 1, 1 << 20));
    else if (key == "deadline_ms") r.budgets.deadline_ms = as_int(value, p, 1, std::numeric_limits<int32_t>::max());
    else if (key == "early_stop") r.early_stop = as_bool(value, p);
    else if (key == "consensus_stop") r.consensus_stop = as_bool(value, p);
    else if (key == "consensus_share") r.consensus_share = as_number(value, p, 0, 1);
    else if (key == "scatter_stop") r.scatter_stop = static_cast<int32_t>(as_int(value, p, 0, 64));
    else if (key == "warmup_first") r.warmup_first = as_bool(value, p);
    else if (key == "aggregator") r.aggregator = as_bool(value, p);
    else if (key == "token_confidence") r.record_token_confidence = as_bool(value, p);
    else if (key == "max_zooms") r.max_zooms = static_cast<int32_t>(as_int(value, p, 0, 16));
    else if (key == "assistant_prefix") r.assistant_prefix = as_string(value, p);
  }
  // The engine's own rules on the stop fields (scatter_stop 1 passes the range above).
  try {
    validate_stops(r);
  } catch (const Error& e) {
    const std::string p = "musespark." + e.field();
    throw ApiError::invalid(p, fmt::format("{}: {}", p, e.message()));
  }
}

std::vector<std::string> parse_stop(const Json& v) {
  std::vector<std::string> stop;
  if (v.is_string()) {
    stop.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > 4) throw ApiError::invalid("stop", "stop: at most 4 sequences");
    for (size_t i = 0; i < v.size(); ++i) stop.push_back(as_string(v[i], fmt::format("stop[{}]", i)));
  } else {
    wrong_type("stop", "a string or an array of strings", v);
  }
  for (const auto& s : stop)
    if (s.empty()) throw ApiError::invalid("stop", "stop: a stop sequence must not be empty");
  return stop;
}

// Fields that are only accepted with the value meaning "off".
void check_off(const std::string& key, const Json& v) {
  auto refuse = [&](const std::string& why) { unsupported(key, why); };
  if (key == "frequency_penalty" || key == "presence_penalty") {
    if (as_number(v, key, -2, 2) != 0) refuse("not supported (only 0)");
  } else if (key == "logit_bias") {
    expect_object(v, key);
    if (!v.empty()) refuse("not supported");
  } else if (key == "tools") {
    if (!v.is_array()) wrong_type(key, "an array", v);
    if (!v.empty()) refuse("this server has no tools");
  } else if (key == "tool_choice") {
    if (!(v.is_string() && v.get<std::string>() == "none")) refuse("this server has no tools (only \"none\")");
  } else if (key == "parallel_tool_calls") {
    as_bool(v, key);
  } else if (key == "response_format") {
    expect_object(v, key);
    if (!(v.contains("type") && v["type"] == "text")) refuse("only {\"type\": \"text\"}");
  } else if (key == "modalities") {
    if (!(v.is_array() && v.size() == 1 && v[0] == "text")) refuse("only [\"text\"]");
  } else if (key == "store") {
    if (as_bool(v, key)) refuse("this server stores nothing (only false)");
  } else {
    refuse("not supported");  // audio, prediction, web_search_options, functions, function_call
  }
}

}  // namespace

ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits) {
  const Json j = parse_body(body);
  if (!j.is_object()) throw ApiError::invalid("", "the request body must be a JSON object", "invalid_json");
  known_keys(j, "",
             {"model", "messages", "stream", "stream_options", "n", "seed", "temperature", "top_p",
              "max_completion_tokens", "max_tokens", "stop", "reasoning_effort", "mode", "logprobs", "top_logprobs",
              "musespark", "user", "metadata", "service_tier", "safety_identifier", "prompt_cache_key",
              "frequency_penalty", "presence_penalty", "logit_bias", "tools", "tool_choice", "parallel_tool_calls",
              "response_format", "modalities", "store", "audio", "prediction", "web_search_options", "functions",
              "function_call"});
  ChatRequest out;
  Request& r = out.request;
  r.messages.clear();
  std::optional<double> temperature, top_p;
  std::optional<int64_t> max_completion_tokens, max_tokens;
  std::optional<Mode> mode;
  bool effort_none = false, logprobs = false, has_stream_options = false;
  int64_t top_logprobs = 0;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;  // null means "not given"
    if (key == "model") out.model = as_string(value, key);
    else if (key == "messages") r.messages = parse_messages(value, limits);
    else if (key == "stream") out.stream = as_bool(value, key);
    else if (key == "stream_options") {
      expect_object(value, key);
      known_keys(value, key, {"include_usage", "include_obfuscation"});
      if (value.contains("include_usage") && !value["include_usage"].is_null())
        out.include_usage = as_bool(value["include_usage"], "stream_options.include_usage");
      has_stream_options = true;
    } else if (key == "n") out.n = static_cast<int32_t>(as_int(value, key, 1, limits.max_n));
    else if (key == "seed") {
      if (!value.is_number_integer()) wrong_type(key, "an integer", value);
      // Negative seeds (OpenAI takes any 64-bit integer) wrap to unsigned.
      out.seed = value.is_number_unsigned() ? value.get<uint64_t>() : static_cast<uint64_t>(value.get<int64_t>());
    } else if (key == "temperature") temperature = as_number(value, key, 0, 2);
    else if (key == "top_p") top_p = as_number(value, key, 0, 1, true);
    else if (key == "max_completion_tokens") max_completion_tokens = as_int(value, key, 1, std::numeric_limits<int32_t>::max());
    else if (key == "max_tokens") max_tokens = as_int(value, key, 1, std::numeric_limits<int32_t>::max());
    else if (key == "stop") out.stop = parse_stop(value);
    else if (key == "reasoning_effort") {
      const std::string name = as_string(value, key);
      try {
        if (name == "none") effort_none = true;  // no reasoning: Instant
        else r.effort = parse_effort(name, key);
      } catch (const Error&) {
        throw ApiError::invalid(key, fmt::format("{}: expected none, minimal, low, medium, high or xhigh; got \"{}\"", key, name));
      }
    } else if (key == "mode") {
      try {
        mode = parse_mode(as_string(value, key), key);
      } catch (const Error& e) {
        throw ApiError::invalid(key, e.what());
      }
    } else if (key == "logprobs") logprobs = as_bool(value, key);
    else if (key == "top_logprobs") top_logprobs = as_int(value, key, 0, 20);
    else if (key == "musespark") parse_extension(value, out);
    else if (key == "user" || key == "service_tier" || key == "safety_identifier" || key == "prompt_cache_key")
      as_string(value, key);  // accepted, and nothing to do
    else if (key == "metadata") expect_object(value, key);
    else check_off(key, value);
  }
  if (r.messages.empty())
    throw ApiError::invalid("messages", "messages: missing required parameter", "missing_required_parameter");
  if (logprobs)
    unsupported("logprobs", "not supported: the engine reports DeepConf confidence per token (ask "
                            "musespark.token_confidence and musespark.trace), not log-probabilities");
  if (top_logprobs > 0) unsupported("top_logprobs", "needs logprobs, which is not supported");
  if (has_stream_options && !out.stream)
    throw ApiError::invalid("stream_options", "stream_options: only allowed when stream is true");
  if (max_completion_tokens && max_tokens && *max_completion_tokens != *max_tokens)
    throw ApiError::invalid("max_tokens", "max_tokens: give max_completion_tokens or max_tokens, not two different values");
  if (auto cap = max_completion_tokens ? max_completion_tokens : max_tokens) r.budgets.max_total_tokens = *cap;
  if (effort_none) {
    if (mode && *mode != Mode::instant)
      throw ApiError::invalid("reasoning_effort", "reasoning_effort: \"none\" means Instant, but mode asks for " +
                                                      std::string(mode_name(*mode)));
    mode = Mode::instant;
    r.effort = Effort::minimal;
  }
  r.mode = mode.value_or(Mode::automatic);
  if (temperature || top_p) {
    SamplingParams s;
    s.temperature = temperature ? static_cast<float>(*temperature)
                                : default_agent_sampling(r.mode != Mode::instant).temperature;
    s.top_p = top_p ? static_cast<float>(*top_p) : default_agent_sampling(s.temperature > 0).top_p;
    r.sampling = s;
  }
  return out;
}

uint64_t choice_seed(uint64_t seed, int32_t index) {
  if (index == 0) return seed;
  // splitmix64 of (seed, index)
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(index);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::optional<std::vector<std::byte>> decode_base64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3);
  uint32_t bits = 0;
  int count = 0, padding = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int v = value(c);
    if (v < 0 || padding > 0) return std::nullopt;  // a stray character, or data after padding
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<std::byte>(bits >> 16));
      out.push_back(static_cast<std::byte>(bits >> 8));
      out.push_back(static_cast<std::byte>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 1 || padding > 2) return std::nullopt;
  if (count == 2) out.push_back(static_cast<std::byte>(bits >> 4));
  if (count == 3) {
    out.push_back(static_cast<std::byte>(bits >> 10));
    out.push_back(static_cast<std::byte>(bits >> 2));
  }
  return out;
}

}  // namespace musespark::serve
