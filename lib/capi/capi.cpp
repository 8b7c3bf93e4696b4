// The C ABI of include/musespark/musespark.h over the C++ API.
//
// Every entry point runs its body through `guarded`, which turns every
// exception into a status and the thread's last error message: nothing
// throws across the boundary. Handles own C++ values; strings handed out
// point into them.
#define MUSESPARK_BUILDING 1
#include "musespark/musespark.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "musespark/engine.hpp"
#include "musespark/error.hpp"
#include "musespark/generate.hpp"
#include "musespark/runtime.hpp"
#include "musespark/version.hpp"

using musespark::Error;
using musespark::ErrorKind;

struct musespark_engine {
  musespark::Engine engine;
  std::vector<int32_t> eos_ids;   // end-of-sequence ids (plain generation)
  std::vector<int32_t> chat_ids;  // plus the chat template's turn ends
};

struct musespark_request {
  musespark::Request request;
};

struct musespark_result {
  musespark::Result result;
  std::string trace_json;  // computed at creation, so that reading is thread-safe
};

namespace {

thread_local std::string last_error;

void set_error(const char* message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    last_error.clear();  // out of memory: an empty message beats none at all
  }
}

musespark_status status_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::io: return MUSESPARK_STATUS_IO;
    case ErrorKind::format: return MUSESPARK_STATUS_FORMAT;
    case ErrorKind::unsupported: return MUSESPARK_STATUS_UNSUPPORTED;
    case ErrorKind::invalid_argument: return MUSESPARK_STATUS_INVALID_ARGUMENT;
    case ErrorKind::context_overflow: return MUSESPARK_STATUS_CONTEXT_OVERFLOW;
    case ErrorKind::internal: return MUSESPARK_STATUS_INTERNAL;
  }
  return MUSESPARK_STATUS_INTERNAL;
}

// The number a C caller stored in an enum-typed field or argument. C lets it
// be any int; in C++, reading an enum object whose value is outside the
// enumerators' range is undefined, so the bytes are read as the integer.
template <class Enum>
int enum_value(const Enum& value) {
  std::underlying_type_t<Enum> raw;
  static_assert(sizeof raw == sizeof value);
  std::memcpy(&raw, &value, sizeof raw);
  return static_cast<int>(raw);
}

// A status other than an ErrorKind's (BUFFER_TOO_SMALL) travels as this.
struct StatusError {
  musespark_status status;
  std::string message;
};

template <class Body>
musespark_status guarded(Body&& body) noexcept {
  last_error.clear();
  try {
    body();
    return MUSESPARK_STATUS_OK;
  } catch (const Error& e) {
    set_error(e.what());
    return status_of(e.kind());
  } catch (const StatusError& e) {
    set_error(e.message.c_str());
    return e.status;
  } catch (const std::bad_alloc&) {
    set_error("out of memory");
    return MUSESPARK_STATUS_OUT_OF_MEMORY;
  } catch (const std::filesystem::filesystem_error& e) {
    set_error(e.what());
    return MUSESPARK_STATUS_IO;
  } catch (const std::exception& e) {
    set_error(e.what());
    return MUSESPARK_STATUS_INTERNAL;
  } catch (...) {
    set_error("unknown exception (a bug in musespark)");
    return MUSESPARK_STATUS_INTERNAL;
  }
}

[[noreturn]] void bad_argument(const char* function, const char* argument, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", fmt::format("{}: {}", function, argument), message);
}

template <class T>
void require(const T* pointer, const char* function, const char* argument) {
  if (!pointer) bad_argument(function, argument, "must not be NULL");
}

// Version 1 of every struct is the current one, so the smallest size we
// accept is sizeof(T). A later version keeps accepting the old size and
// reads defaults for the fields an older caller does not have.
template <class T>
void require_size(const T* s, const char* function, const char* argument) {
  require(s, function, argument);
  if (s->struct_size < sizeof(T))
    bad_argument(function, fmt::format("{}->struct_size", argument).c_str(),
                 fmt::format("is {}, expected at least {} (set it with the *_init function)", s->struct_size,
                             sizeof(T)));
}

// Input structs: a copy of what the caller has, on top of the defaults.
template <class T>
T read_in(const T* s, const T& defaults) {
  T out = defaults;
  std::memcpy(&out, s, std::min<size_t>(s->struct_size, sizeof(T)));
  return out;
}

// Output structs: only the fields that fit in the caller's struct_size.
template <class T>
void write_out(T* out, T value) {
  value.struct_size = out->struct_size;
  std::memcpy(out, &value, std::min<size_t>(out->struct_size, sizeof(T)));
}

const char* str(const std::string& s) { return s.c_str(); }

// Defaults of the structs, shared by the *_init functions and read_in.
musespark_engine_params default_engine_params() {
  musespark_engine_params p{};
  p.struct_size = sizeof p;
  p.dtype = MUSESPARK_DTYPE_F32;
  return p;
}

musespark_budgets default_budgets() {
  musespark_budgets b{};
  b.struct_size = sizeof b;
  b.max_zooms = musespark::Request{}.max_zooms;
  return b;
}

musespark_sampling default_sampling() {
  musespark_sampling s{};
  s.struct_size = sizeof s;
  s.temperature = musespark::kAgentTemperature;
  s.top_p = musespark::kAgentTopP;
  s.repetition_penalty = 1.0f;
  return s;
}

musespark_generate_params default_generate_params() {
  musespark_generate_params p{};
  p.struct_size = sizeof p;
  p.max_tokens = 128;
  p.thinking = 1;
  return p;
}

musespark::SamplingParams to_cpp(const musespark_sampling& s, uint64_t seed) {
  musespark::SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.repetition_penalty = s.repetition_penalty;
  p.seed = seed;
  return p;
}

musespark_event_kind kind_of(musespark::EventKind kind) {
  using musespark::EventKind;
  switch (kind) {
    case EventKind::agent_started: return MUSESPARK_EVENT_AGENT_STARTED;
    case EventKind::text_delta: return MUSESPARK_EVENT_TEXT_DELTA;
    case EventKind::step: return MUSESPARK_EVENT_STEP;
    case EventKind::agent_finished: return MUSESPARK_EVENT_AGENT_FINISHED;
    case EventKind::vote_update: return MUSESPARK_EVENT_VOTE_UPDATE;
    case EventKind::escalation: return MUSESPARK_EVENT_ESCALATION;
    case EventKind::final_answer: return MUSESPARK_EVENT_FINAL;
  }
  return MUSESPARK_EVENT_FINAL;
}

musespark_event to_c(const musespark::Event& e) {
  musespark_event c{};
  c.struct_size = sizeof c;
  c.kind = kind_of(e.kind);
  c.agent = e.agent;
  c.round = e.round;
  std::string_view text = e.text;
  if (text.empty() && e.escalation) text = e.escalation->reason;
  c.text = text.empty() ? "" : text.data();
  c.text_length = text.size();
  c.in_thinking = e.in_thinking ? 1 : 0;
  c.tokens = e.tokens;
  c.confidence = e.confidence;
  return c;
}

musespark::Message& last_message(musespark_request* r) {
  auto& messages = r->request.messages;
  if (messages.empty()) messages.push_back(musespark::Message{"user", {}});
  return messages.back();
}

musespark_result* new_result(musespark::Result result, std::string trace_json) {
  return new musespark_result{std::move(result), std::move(trace_json)};
}

void add_unique(std::vector<int32_t>& ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

}  // namespace

// The definitions below have C linkage from their declarations in musespark.h.

/* ------------------------------------------------------------ version, errors */

const char* musespark_version_string(void) { return MUSESPARK_VERSION_STRING; }
uint32_t musespark_abi_version(void) { return MUSESPARK_ABI_VERSION; }
const char* musespark_last_error(void) { return last_error.c_str(); }

const char* musespark_status_name(musespark_status status) {
  switch (status) {
    case MUSESPARK_STATUS_OK: return "ok";
    case MUSESPARK_STATUS_INVALID_ARGUMENT: return "invalid_argument";
    case MUSESPARK_STATUS_IO: return "io";
    case MUSESPARK_STATUS_FORMAT: return "format";
    case MUSESPARK_STATUS_UNSUPPORTED: return "unsupported";
    case MUSESPARK_STATUS_CONTEXT_OVERFLOW: return "context_overflow";
    case MUSESPARK_STATUS_BUFFER_TOO_SMALL: return "buffer_too_small";
    case MUSESPARK_STATUS_OUT_OF_MEMORY: return "out_of_memory";
    case MUSESPARK_STATUS_INTERNAL: return "internal";
  }
  return "unknown";
}

/* ------------------------------------------------------------ *_init */

void musespark_engine_params_init(musespark_engine_params* params) {
  const char* const fn = __func__;
  guarded([&] {
    require(params, fn, "params");
    *params = default_engine_params();
  });
}

void musespark_model_info_init(musespark_model_info* info) {
  const char* const fn = __func__;
  guarded([&] {
    require(info, fn, "info");
    *info = musespark_model_info{};
    info->struct_size = sizeof *info;
    info->architecture = "";
  });
}

void musespark_budgets_init(musespark_budgets* budgets) {
  const char* const fn = __func__;
  guarded([&] {
    require(budgets, fn, "budgets");
    *budgets = default_budgets();
  });
}

void musespark_sampling_init(musespark_sampling* sampling) {
  const char* const fn = __func__;
  guarded([&] {
    require(sampling, fn, "sampling");
    *sampling = default_sampling();
  });
}

void musespark_generate_params_init(musespark_generate_params* params) {
  const char* const fn = __func__;
  guarded([&] {
    require(params, fn, "params");
    *params = default_generate_params();
  });
}

void musespark_agent_init(musespark_agent* agent) {
  const char* const fn = __func__;
  guarded([&] {
    require(agent, fn, "agent");
    *agent = musespark_agent{};
    agent->struct_size = sizeof *agent;
  });
}

void musespark_vote_init(musespark_vote* vote) {
  const char* const fn = __func__;
  guarded([&] {
    require(vote, fn, "vote");
    *vote = musespark_vote{};
    vote->struct_size = sizeof *vote;
  });
}

void musespark_usage_init(musespark_usage* usage) {
  const char* const fn = __func__;
  guarded([&] {
    require(usage, fn, "usage");
    *usage = musespark_usage{};
    usage->struct_size = sizeof *usage;
  });
}

void musespark_visual_action_init(musespark_visual_action* action) {
  const char* const fn = __func__;
  guarded([&] {
    require(action, fn, "action");
    *action = musespark_visual_action{};
    action->struct_size = sizeof *action;
  });
}

/* ------------------------------------------------------------ engine */

musespark_status musespark_engine_load(const char* model_dir, const musespark_engine_params* params,
                                       musespark_engine** out) {
  const char* const fn = __func__;
  return guarded([&] {
    require(out, fn, "out");
    *out = nullptr;
    require(model_dir, fn, "model_dir");
    musespark_engine_params p = default_engine_params();
    if (params) {
      require_size(params, fn, "params");
      p = read_in(params, p);
    }
    musespark::EngineOptions options;
    const int dtype = enum_value(p.dtype);
    switch (dtype) {
      case MUSESPARK_DTYPE_F32: options.model.dtype = musespark::DType::f32; break;
      case MUSESPARK_DTYPE_BF16: options.model.dtype = musespark::DType::bf16; break;
      case MUSESPARK_DTYPE_INT8: options.model.dtype = musespark::DType::int8; break;
      case MUSESPARK_DTYPE_Q4: options.model.dtype = musespark::DType::q4; break;
      default: bad_argument(fn, "params->dtype", fmt::format("must be F32 (0), BF16 (1), INT8 (2) or Q4 (3), got {}",
                                                                   dtype));
    }
    if (p.threads < 0) bad_argument(fn, "params->threads", "must not be negative");
    if (p.max_context < 0) bad_argument(fn, "params->max_context", "must not be negative");
    options.model.threads = p.threads;
    options.model.max_context = p.max_context;

    auto engine = musespark::Engine::load(model_dir, options);
    std::vector<int32_t> eos, chat;
    for (int32_t id : engine.model_info().eos_token_ids) add_unique(eos, id);
    if (auto id = engine.tokenizer().eos_id()) add_unique(eos, *id);
    chat = eos;
    for (const auto& name : engine.chat_template().stop_tokens())
      if (auto id = engine.tokenizer().token_id(name)) add_unique(chat, *id);
    *out = new musespark_engine{std::move(engine), std::move(eos), std::move(chat)};
  });
}

void musespark_engine_free(musespark_engine* engine) { delete engine; }

musespark_status musespark_engine_info(const musespark_engine* engine, musespark_model_info* out) {
  const char* const fn = __func__;
  return guarded([&] {
    require(engine, fn, "engine");
    require_size(out, fn, "out");
    const musespark::ModelInfo& m = engine->engine.model_info();
    musespark_model_info info{};
    info.architecture = str(m.architecture);
    info.vocab_size = m.vocab_size;
    info.hidden_size = m.hidden_size;
    info.num_layers = m.num_layers;
    info.max_context = m.max_context;
    info.parameter_count = m.parameter_count;
    info.vision = m.vision ? 1 : 0;
    info.threads = m.threads;
    write_out(out, info);
  });
}

/* ------------------------------------------------------------ requests */

musespark_status musespark_request_init(musespark_request** out) {
  const char* const fn = __func__;
  return guarded([&] {
    require(out, fn, "out");
    *out = nullptr;
    *out = new musespark_request{};
  });
}

void musespark_request_free(musespark_request* request) { delete request; }

musespark_status musespark_request_add_message(musespark_request* request, const char* role) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require(role, fn, "role");
    const std::string r = role;
    if (r != "system" && r != "user" && r != "assistant")
      bad_argument(fn, "role", "expected \"system\", \"user\" or \"assistant\", got \"" + r + "\"");
    request->request.messages.push_back(musespark::Message{r, {}});
  });
}

musespark_status musespark_request_add_text(musespark_request* request, const char* text) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require(text, fn, "text");
    last_message(request).parts.push_back(musespark::Part::of_text(text));
  });
}

musespark_status musespark_request_add_image_file(musespark_request* request, const char* path) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require(path, fn, "path");
    auto part = musespark::Part::of_image(musespark::Image::load(path));
    last_message(request).parts.push_back(std::move(part));
  });
}

musespark_status musespark_request_add_image_encoded(musespark_request* request, const uint8_t* data, size_t size) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require(data, fn, "data");
    auto bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size);
    auto part = musespark::Part::of_image(musespark::Image::decode(bytes, "image"));
    last_message(request).parts.push_back(std::move(part));
  });
}

musespark_status musespark_request_add_image_rgb(musespark_request* request, const uint8_t* pixels, int32_t width,
                                                 int32_t height) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require(pixels, fn, "pixels");
    if (width <= 0 || height <= 0)
      bad_argument(fn, "width, height", fmt::format("must be positive, got {}x{}", width, height));
    // from_rgb checks the size limits before it reads a byte.
    const size_t bytes = static_cast<size_t>(width) * static_cast<size_t>(height) * 3;
    auto part = musespark::Part::of_image(musespark::Image::from_rgb({pixels, bytes}, width, height));
    last_message(request).parts.push_back(std::move(part));
  });
}

musespark_status musespark_request_set_mode(musespark_request* request, musespark_mode mode) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    const int mode_number = enum_value(mode);
    switch (mode_number) {
      case MUSESPARK_MODE_INSTANT: request->request.mode = musespark::Mode::instant; break;
      case MUSESPARK_MODE_THINKING: request->request.mode = musespark::Mode::thinking; break;
      case MUSESPARK_MODE_CONTEMPLATING: request->request.mode = musespark::Mode::contemplating; break;
      case MUSESPARK_MODE_AUTO: request->request.mode = musespark::Mode::automatic; break;
      default: bad_argument(fn, "mode", fmt::format("must be 0 to 3, got {}", mode_number));
    }
  });
}

musespark_status musespark_request_set_effort(musespark_request* request, musespark_effort effort) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    const int e = enum_value(effort);
    if (e < MUSESPARK_EFFORT_MINIMAL || e > MUSESPARK_EFFORT_XHIGH)
      bad_argument(fn, "effort", fmt::format("must be 0 to 4, got {}", e));
    request->request.effort = static_cast<musespark::Effort>(e);  // same order as musespark::Effort
  });
}

musespark_status musespark_request_set_seed(musespark_request* request, uint64_t seed) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    request->request.seed = seed;
  });
}

musespark_status musespark_request_set_budgets(musespark_request* request, const musespark_budgets* budgets) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require_size(budgets, fn, "budgets");
    const musespark_budgets b = read_in(budgets, default_budgets());
    musespark::Budgets& out = request->request.budgets;
    out.agents = b.agents;
    out.refine_agents = b.refine_agents;
    out.max_thinking_tokens = b.max_thinking_tokens;
    out.max_answer_tokens = b.max_answer_tokens;
    out.max_total_tokens = b.max_total_tokens;
    out.deadline_ms = b.deadline_ms;
    request->request.max_zooms = b.max_zooms;
  });
}

musespark_status musespark_request_set_sampling(musespark_request* request, const musespark_sampling* sampling) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require_size(sampling, fn, "sampling");
    musespark::SamplingParams p = to_cpp(read_in(sampling, default_sampling()), 0);
    musespark::validate(p);
    request->request.sampling = p;
  });
}

musespark_status musespark_request_set_early_stop(musespark_request* request, int32_t early_stop,
                                                  int32_t consensus_stop) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    request->request.early_stop = early_stop != 0;
    request->request.consensus_stop = consensus_stop != 0;
  });
}

// Checks one stop field at set time with the engine's own rules
// (validate_stops), on a default request with only that field changed, and
// names the C argument in the error.
template <class Set>
void check_stop_field(const char* function, const char* argument, Set set) {
  musespark::Request probe;
  set(probe);
  try {
    musespark::validate_stops(probe);
  } catch (const Error& e) {
    bad_argument(function, argument, e.message());
  }
}

musespark_status musespark_request_set_consensus_share(musespark_request* request, double share) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    check_stop_field(fn, "share", [&](musespark::Request& r) { r.consensus_share = share; });
    request->request.consensus_share = share;
  });
}

musespark_status musespark_request_set_scatter_stop(musespark_request* request, int32_t votes) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    check_stop_field(fn, "votes", [&](musespark::Request& r) { r.scatter_stop = votes; });
    request->request.scatter_stop = votes;
  });
}

musespark_status musespark_request_set_assistant_prefix(musespark_request* request, const char* prefix) {
  const char* const fn = __func__;
  return guarded([&] {
    require(request, fn, "request");
    require(prefix, fn, "prefix");
    request->request.assistant_prefix = prefix;
  });
}

/* ------------------------------------------------------------ asking */

musespark_status musespark_engine_ask(const musespark_engine* engine, const musespark_request* request,
                                      musespark_event_callback callback, void* user_data, musespark_result** out) {
  const char* const fn = __func__;
  return guarded([&] {
    require(out, fn, "out");
    *out = nullptr;
    require(engine, fn, "engine");
    require(request, fn, "request");
    musespark::EventCallback on_event;
    if (callback) {
      on_event = [callback, user_data](const musespark::Event& e) {
        const musespark_event c = to_c(e);
        return callback(&c, user_data) != 0;
      };
    }
    musespark::Result result = engine->engine.ask(request->request, on_event);
    std::string json = result.trace.to_json();
    *out = new_result(std::move(result), std::move(json));
  });
}

void musespark_result_free(musespark_result* result) { delete result; }

const char* musespark_result_answer(const musespark_result* result) {
  const char* const fn = __func__;
  const char* answer = "";
  guarded([&] {
    require(result, fn, "result");
    answer = str(result->result.answer);
  });
  return answer;
}

const char* musespark_result_text(const musespark_result* result) {
  const char* const fn = __func__;
  const char* text = "";
  guarded([&] {
    require(result, fn, "result");
    text = str(result->result.text);
  });
  return text;
}

const char* musespark_result_trace_json(const musespark_result* result) {
  const char* const fn = __func__;
  const char* json = "";
  guarded([&] {
    require(result, fn, "result");
    json = str(result->trace_json);
  });
  return json;
}

namespace {

template <class Vector>
int32_t count_of(const musespark_result* result, const char* function, Vector musespark::ReasoningTrace::*member) {
  int32_t count = 0;
  guarded([&] {
    require(result, function, "result");
    count = static_cast<int32_t>((result->result.trace.*member).size());
  });
  return count;
}

template <class Vector>
const auto& element(const musespark_result* result, int32_t index, const char* function,
                    Vector musespark::ReasoningTrace::*member) {
  require(result, function, "result");
  const Vector& items = result->result.trace.*member;
  if (index < 0 || static_cast<size_t>(index) >= items.size())
    bad_argument(function, "index", fmt::format("{} is out of range: there are {}", index, items.size()));
  return items[static_cast<size_t>(index)];
}

}  // namespace

int32_t musespark_result_agent_count(const musespark_result* result) {
  const char* const fn = __func__;
  return count_of(result, fn, &musespark::ReasoningTrace::agents);
}

musespark_status musespark_result_agent(const musespark_result* result, int32_t index, musespark_agent* out) {
  const char* const fn = __func__;
  return guarded([&] {
    require_size(out, fn, "out");
    const musespark::AgentTrace& a = element(result, index, fn, &musespark::ReasoningTrace::agents);
    musespark_agent c{};
    c.id = a.id;
    c.round = a.round;
    c.role = str(a.role);
    c.thinking = str(a.thinking);
    c.answer_text = str(a.answer_text);
    c.answer = str(a.answer);
    c.normalized_answer = str(a.normalized_answer);
    c.stop_reason = musespark::agent_stop_name(a.stop_reason);
    c.thinking_tokens = a.thinking_tokens;
    c.answer_tokens = a.answer_tokens;
    c.confidence_mean = a.confidence.mean;
    c.confidence_lowest_group = a.confidence.lowest_group;
    c.confidence_bottom10 = a.confidence.bottom10;
    c.confidence_tail = a.confidence.tail;
    c.vote_weight = a.vote_weight;
    write_out(out, c);
  });
}

int32_t musespark_result_vote_count(const musespark_result* result) {
  const char* const fn = __func__;
  return count_of(result, fn, &musespark::ReasoningTrace::votes);
}

musespark_status musespark_result_vote(const musespark_result* result, int32_t index, musespark_vote* out) {
  const char* const fn = __func__;
  return guarded([&] {
    require_size(out, fn, "out");
    const musespark::VoteEntry& v = element(result, index, fn, &musespark::ReasoningTrace::votes);
    musespark_vote c{};
    c.answer = str(v.answer);
    c.display = str(v.display);
    c.votes = v.votes;
    c.weight = v.weight;
    c.share = v.share;
    write_out(out, c);
  });
}

musespark_status musespark_result_usage(const musespark_result* result, musespark_usage* out) {
  const char* const fn = __func__;
  return guarded([&] {
    require(result, fn, "result");
    require_size(out, fn, "out");
    const musespark::Usage& u = result->result.trace.usage;
    musespark_usage c{};
    c.prompt_tokens = u.prompt_tokens;
    c.generated_tokens = u.generated_tokens;
    c.prefill_seconds = u.prefill_seconds;
    c.decode_seconds = u.decode_seconds;
    c.total_seconds = u.total_seconds;
    c.tokens_per_second = u.tokens_per_second;
    write_out(out, c);
  });
}

int32_t musespark_result_visual_action_count(const musespark_result* result) {
  const char* const fn = __func__;
  return count_of(result, fn, &musespark::ReasoningTrace::visual_actions);
}

musespark_status musespark_result_visual_action(const musespark_result* result, int32_t index,
                                                musespark_visual_action* out) {
  const char* const fn = __func__;
  return guarded([&] {
    require_size(out, fn, "out");
    const musespark::VisualAction& v =
        element(result, index, fn, &musespark::ReasoningTrace::visual_actions);
    musespark_visual_action c{};
    c.agent = v.agent;
    c.kind = str(v.kind);
    c.image = v.image;
    c.x0 = v.box[0];
    c.y0 = v.box[1];
    c.x1 = v.box[2];
    c.y1 = v.box[3];
    c.applied = v.applied ? 1 : 0;
    c.crop_width = v.crop_width;
    c.crop_height = v.crop_height;
    write_out(out, c);
  });
}

/* ------------------------------------------------------------ lower level */

musespark_status musespark_tokenize(const musespark_engine* engine, const char* text, size_t length, int32_t* ids,
                                    size_t capacity, size_t* count) {
  const char* const fn = __func__;
  return guarded([&] {
    require(count, fn, "count");
    *count = 0;
    require(engine, fn, "engine");
    if (!text && length > 0) bad_argument(fn, "text", "must not be NULL when length > 0");
    const std::vector<int32_t> tokens =
        engine->engine.tokenizer().encode(text ? std::string_view(text, length) : std::string_view());
    *count = tokens.size();
    if (!ids) capacity = 0;
    if (tokens.size() > capacity)
      throw StatusError{MUSESPARK_STATUS_BUFFER_TOO_SMALL,
                        fmt::format("musespark_tokenize: ids: room for {} ids, {} needed", capacity, tokens.size())};
    std::copy(tokens.begin(), tokens.end(), ids);
  });
}

musespark_status musespark_detokenize(const musespark_engine* engine, const int32_t* ids, size_t count, char* out,
                                      size_t capacity, size_t* length) {
  const char* const fn = __func__;
  return guarded([&] {
    require(length, fn, "length");
    *length = 0;
    require(engine, fn, "engine");
    if (!ids && count > 0) bad_argument(fn, "ids", "must not be NULL when count > 0");
    const std::string text =
        engine->engine.tokenizer().decode(ids ? std::span<const int32_t>(ids, count) : std::span<const int32_t>());
    *length = text.size();
    if (!out) capacity = 0;
    if (text.size() + 1 > capacity) {
      if (capacity > 0) out[0] = '\0';
      throw StatusError{MUSESPARK_STATUS_BUFFER_TOO_SMALL,
                        fmt::format("musespark_detokenize: out: room for {} bytes, {} needed (with the NUL)",
                                    capacity, text.size() + 1)};
    }
    std::memcpy(out, text.data(), text.size());
    out[text.size()] = '\0';
  });
}

musespark_status musespark_generate(const musespark_engine* engine, const char* prompt,
                                    const musespark_generate_params* params, musespark_event_callback callback,
                                    void* user_data, musespark_result** out) {
  const char* const fn = __func__;
  return guarded([&] {
    require(out, fn, "out");
    *out = nullptr;
    require(engine, fn, "engine");
    require(prompt, fn, "prompt");
    musespark_generate_params p = default_generate_params();
    if (params) {
      require_size(params, fn, "params");
      p = read_in(params, p);
    }
    if (p.max_tokens < 1) bad_argument(fn, "params->max_tokens", fmt::format("must be at least 1, got {}",
                                                                                   p.max_tokens));
    musespark::GenerateOptions options;
    options.max_tokens = p.max_tokens;
    if (p.sampling) {
      require_size(p.sampling, fn, "params->sampling");
      options.sampling = to_cpp(read_in(p.sampling, default_sampling()), p.seed);
    } else {
      options.sampling.seed = p.seed;  // greedy
    }

    const musespark::Tokenizer& tokenizer = engine->engine.tokenizer();
    std::vector<int32_t> tokens;
    if (p.chat) {
      const musespark::ChatMessage message{"user", prompt};
      tokens = tokenizer.encode(engine->engine.chat_template().render({&message, 1}, true, p.thinking != 0));
      options.stop_token_ids = engine->chat_ids;
    } else {
      tokens = tokenizer.encode(prompt);
      if (auto bos = tokenizer.bos_id()) tokens.insert(tokens.begin(), *bos);
      options.stop_token_ids = engine->eos_ids;
    }
    if (tokens.empty()) bad_argument(fn, "prompt", "is empty (and the tokenizer has no BOS token)");

    bool cancelled = false;
    int64_t generated = 0;
    options.on_token = [&](const musespark::SampledToken&) {
      ++generated;
      return !cancelled;
    };
    if (callback) {
      options.on_text = [&](std::string_view text) {
        if (cancelled) return;
        musespark_event e{};
        e.struct_size = sizeof e;
        e.kind = MUSESPARK_EVENT_TEXT_DELTA;
        e.agent = 0;
        e.round = 1;
        e.text = text.empty() ? "" : text.data();
        e.text_length = text.size();
        e.tokens = generated;
        cancelled = callback(&e, user_data) == 0;
      };
    }

    musespark::Runtime runtime(engine->engine.model());
    musespark::GenerateResult g = musespark::generate(runtime, &tokenizer, tokens, options);

    musespark::Result result;
    result.answer = g.text;
    result.text = g.text;
    musespark::Usage& u = result.trace.usage;
    u.prompt_tokens = g.prompt_tokens;
    u.generated_tokens = static_cast<int64_t>(g.tokens.size());
    u.prefill_seconds = g.prefill_seconds;
    u.decode_seconds = g.decode_seconds;
    u.total_seconds = g.prefill_seconds + g.decode_seconds;
    u.tokens_per_second = g.decode_seconds > 0 ? static_cast<double>(u.generated_tokens) / g.decode_seconds : 0;
    nlohmann::json json = {{"tokens", g.tokens},
                           {"text", g.text},
                           {"stop_reason", cancelled ? "cancelled" : musespark::stop_reason_name(g.stop_reason)}};
    *out = new_result(std::move(result), json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  });
}

