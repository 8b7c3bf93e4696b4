// ReasoningTrace::to_json and the enum names of include/musespark/trace.hpp.
// The document is described field by field in docs/trace.md.
#include "musespark/trace.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "common/json_file.hpp"
#include "musespark/error.hpp"

namespace musespark {
namespace {

using Json = nlohmann::ordered_json;

Json number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

// A float as the double with the same shortest decimal spelling, so 0.7f is
// written 0.7 rather than 0.699999988079071.
Json number(float value) {
  if (!std::isfinite(value)) return nullptr;
  return std::strtod(fmt::format("{}", value).c_str(), nullptr);
}

Json to_json(const ConfidenceSummary& c) {
  return Json{{"mean", number(c.mean)},
              {"lowest_group", number(c.lowest_group)},
              {"bottom10", number(c.bottom10)},
              {"tail", number(c.tail)},
              {"tokens", c.tokens}};
}

Json to_json(const ReasoningStep& s) {
  return Json{{"index", s.index}, {"text", s.text}, {"first_token", s.first_token}, {"end_token", s.end_token}};
}

Json to_json(const AgentTrace& a) {
  Json j;
  j["id"] = a.id;
  j["round"] = a.round;
  j["role"] = a.role;
  j["seed"] = a.seed;
  j["stop_reason"] = agent_stop_name(a.stop_reason);
  j["thinking"] = a.thinking;
  Json steps = Json::array();
  for (const auto& s : a.steps) steps.push_back(to_json(s));
  j["steps"] = std::move(steps);
  j["answer_text"] = a.answer_text;
  j["answer"] = a.answer;
  j["normalized_answer"] = a.normalized_answer;
  j["thinking_tokens"] = a.thinking_tokens;
  j["answer_tokens"] = a.answer_tokens;
  j["forced_tokens"] = a.forced_tokens;
  j["budget_closed"] = a.budget_closed;
  j["confidence"] = to_json(a.confidence);
  if (!a.token_confidence.empty()) {
    Json series = Json::array();
    for (float c : a.token_confidence) series.push_back(number(c));
    j["token_confidence"] = std::move(series);
  }
  j["vote_weight"] = number(a.vote_weight);
  return j;
}

Json to_json(const VoteEntry& v) {
  return Json{{"answer", v.answer},   {"display", v.display}, {"votes", v.votes},
              {"weight", number(v.weight)}, {"share", number(v.share)}, {"agents", v.agents}};
}

Json to_json(const Escalation& e) {
  return Json{{"from", mode_name(e.from)},
              {"to", mode_name(e.to)},
              {"reason", e.reason},
              {"value", number(e.value)},
              {"threshold", number(e.threshold)}};
}

Json to_json(const RequestRecord& r) {
  return Json{{"mode", mode_name(r.mode)},
              {"effort", effort_name(r.effort)},
              {"agents", r.agents},
              {"refine_agents", r.refine_agents},
              {"rounds", r.rounds},
              {"max_thinking_tokens", r.max_thinking_tokens},
              {"max_answer_tokens", r.max_answer_tokens},
              {"max_total_tokens", r.max_total_tokens},
              {"deadline_ms", r.deadline_ms},
              {"seed", r.seed},
              {"temperature", number(r.temperature)},
              {"top_p", number(r.top_p)},
              {"early_stop", r.early_stop},
              {"consensus_stop", r.consensus_stop},
              {"warmup_first", r.warmup_first},
              {"confidence_window", r.confidence_window},
              {"keep_fraction", number(r.keep_fraction)},
              {"consensus_share", number(r.consensus_share)},
              {"scatter_stop", r.scatter_stop},
              {"question", r.question}};
}

Json to_json(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"generated_tokens", u.generated_tokens},
              {"prefill_seconds", number(u.prefill_seconds)},
              {"decode_seconds", number(u.decode_seconds)},
              {"total_seconds", number(u.total_seconds)},
              {"tokens_per_second", number(u.tokens_per_second)}};
}

template <typename Enum, size_t N>
Enum parse_name(const std::string& name, const std::string& field, const char* const (&names)[N]) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) return static_cast<Enum>(i);
  std::string expected;
  for (size_t i = 0; i < N; ++i) expected += (i ? ", " : "") + std::string(names[i]);
  throw Error(ErrorKind::invalid_argument, "", field, "expected one of " + expected + "; got \"" + name + "\"");
}

// In enum order.
constexpr const char* kModeNames[] = {"instant", "thinking", "contemplating", "auto"};
constexpr const char* kEffortNames[] = {"minimal", "low", "medium", "high", "xhigh"};
constexpr const char* kStopNames[] = {"eos", "budget", "low_confidence", "consensus", "deadline", "cancelled"};

template <size_t N>
const char* name_of(size_t index, const char* const (&names)[N]) {
  return index < N ? names[index] : "unknown";
}

}  // namespace

const char* mode_name(Mode mode) { return name_of(static_cast<size_t>(mode), kModeNames); }
const char* effort_name(Effort effort) { return name_of(static_cast<size_t>(effort), kEffortNames); }
const char* agent_stop_name(AgentStop stop) { return name_of(static_cast<size_t>(stop), kStopNames); }

Mode parse_mode(const std::string& name, const std::string& field) {
  return parse_name<Mode>(name, field, kModeNames);
}
Effort parse_effort(const std::string& name, const std::string& field) {
  return parse_name<Effort>(name, field, kEffortNames);
}

namespace {

Json to_json(const VisualAction& a) {
  return Json{{"agent", a.agent},
              {"kind", a.kind},
              {"image", a.image},
              {"relative", {number(a.relative[0]), number(a.relative[1]), number(a.relative[2]), number(a.relative[3])}},
              {"box", {a.box[0], a.box[1], a.box[2], a.box[3]}},
              {"token", a.token},
              {"applied", a.applied},
              {"crop_width", a.crop_width},
              {"crop_height", a.crop_height}};
}

}  // namespace

std::string ReasoningTrace::to_json(int indent) const {
  Json j;
  j["schema_version"] = kSchemaVersion;
  j["request"] = musespark::to_json(request);
  j["mode_used"] = mode_name(mode_used);
  j["final_answer"] = final_answer;
  j["final_text"] = final_text;
  j["final_agent"] = final_agent;
  Json agent_list = Json::array();
  for (const auto& a : agents) agent_list.push_back(musespark::to_json(a));
  j["agents"] = std::move(agent_list);
  Json vote_list = Json::array();
  for (const auto& v : votes) vote_list.push_back(musespark::to_json(v));
  j["votes"] = std::move(vote_list);
  Json escalation_list = Json::array();
  for (const auto& e : escalations) escalation_list.push_back(musespark::to_json(e));
  j["escalations"] = std::move(escalation_list);
  Json visual_list = Json::array();
  for (const auto& a : visual_actions) visual_list.push_back(musespark::to_json(a));
  j["visual_actions"] = std::move(visual_list);
  j["early_stop_threshold"] = early_stop_threshold ? number(*early_stop_threshold) : Json(nullptr);
  j["workspace"] = workspace;
  j["usage"] = musespark::to_json(usage);
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace musespark

// ---- reading ---------------------------------------------------------------

namespace musespark {
namespace {

// One JSON value being read, with its path for error messages.
class Field {
 public:
  Field(const nlohmann::json& value, std::string path, const std::string& source)
      : value_(value), path_(std::move(path)), source_(source) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw Error(ErrorKind::format, source_, path_, message);
  }
  [[noreturn]] void wrong_type(const char* wanted) const {
    fail(std::string("expected ") + wanted + ", got " + value_.type_name());
  }

  bool is_null() const { return value_.is_null(); }
  void require_object() const {
    if (!value_.is_object()) wrong_type("an object");
  }

  // The member `key` of this object; nullopt when absent. (A null member is
  // returned: number() reads it as NaN, the other readers refuse it.)
  std::optional<Field> member(const char* key) const {
    if (!value_.is_object()) wrong_type("an object");
    auto it = value_.find(key);
    if (it == value_.end()) return std::nullopt;
    return Field(*it, path_.empty() ? key : path_ + "." + key, source_);
  }
  Field required(const char* key) const {
    auto m = member(key);
    if (!m) Field(value_, path_.empty() ? key : path_ + "." + key, source_).fail("missing");
    return *m;
  }

  // Runs f(Field) for each element of this array.
  template <class F>
  void each(F&& f) const {
    if (!value_.is_array()) wrong_type("an array");
    for (size_t i = 0; i < value_.size(); ++i) f(Field(value_[i], path_ + "[" + std::to_string(i) + "]", source_));
  }

  double number() const {
    if (value_.is_null()) return std::nan("");
    if (!value_.is_number()) wrong_type("a number");
    return value_.get<double>();
  }
  template <class Int>
  Int integer() const {
    if (value_.is_number_unsigned()) {
      auto v = value_.get<uint64_t>();
      if (v <= static_cast<uint64_t>(std::numeric_limits<Int>::max())) return static_cast<Int>(v);
    } else if (value_.is_number_integer()) {
      auto v = value_.get<int64_t>();
      if (v >= static_cast<int64_t>(std::numeric_limits<Int>::min()) &&
          (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<Int>::max())))
        return static_cast<Int>(v);
    } else {
      wrong_type("an integer");
    }
    fail(fmt::format("{} is out of range [{}, {}]", value_.dump(), std::numeric_limits<Int>::min(),
                     std::numeric_limits<Int>::max()));
  }
  bool boolean() const {
    if (!value_.is_boolean()) wrong_type("a boolean");
    return value_.get<bool>();
  }
  std::string string() const {
    if (!value_.is_string()) wrong_type("a string");
    return value_.get<std::string>();
  }
  template <class Enum>
  Enum name(Enum (*parse)(const std::string&, const std::string&)) const {
    try {
      return parse(string(), path_);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::invalid_argument) throw;
      fail(e.message());
    }
  }

 private:
  const nlohmann::json& value_;
  std::string path_;
  const std::string& source_;
};

// Optional members: `target` keeps its default when the key is absent.
void read(const Field& object, const char* key, double& target) {
  if (auto f = object.member(key)) target = f->number();
}
void read(const Field& object, const char* key, float& target) {
  if (auto f = object.member(key)) target = static_cast<float>(f->number());
}
template <class Int, std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>, int> = 0>
void read(const Field& object, const char* key, Int& target) {
  if (auto f = object.member(key)) target = f->integer<Int>();
}
void read(const Field& object, const char* key, bool& target) {
  if (auto f = object.member(key)) target = f->boolean();
}
void read(const Field& object, const char* key, std::string& target) {
  if (auto f = object.member(key)) target = f->string();
}
template <class T, class F>
void read_list(const Field& object, const char* key, std::vector<T>& target, F&& one) {
  if (auto f = object.member(key)) f->each([&](const Field& e) { target.push_back(one(e)); });
}
template <class T, class F>
void read_object(const Field& object, const char* key, T& target, F&& fill) {
  if (auto f = object.member(key)) {
    f->require_object();
    fill(*f, target);
  }
}

Mode mode_of(const std::string& name, const std::string& field) { return parse_mode(name, field); }
Effort effort_of(const std::string& name, const std::string& field) { return parse_effort(name, field); }
AgentStop stop_of(const std::string& name, const std::string& field) {
  return parse_name<AgentStop>(name, field, kStopNames);
}

template <class Enum>
void read_name(const Field& object, const char* key, Enum& target, Enum (*parse)(const std::string&, const std::string&)) {
  if (auto f = object.member(key)) target = f->name(parse);
}

void fill(const Field& j, RequestRecord& r) {
  read_name(j, "mode", r.mode, mode_of);
  read_name(j, "effort", r.effort, effort_of);
  read(j, "agents", r.agents);
  read(j, "refine_agents", r.refine_agents);
  read(j, "rounds", r.rounds);
  read(j, "max_thinking_tokens", r.max_thinking_tokens);
  read(j, "max_answer_tokens", r.max_answer_tokens);
  read(j, "max_total_tokens", r.max_total_tokens);
  read(j, "deadline_ms", r.deadline_ms);
  read(j, "seed", r.seed);
  read(j, "temperature", r.temperature);
  read(j, "top_p", r.top_p);
  read(j, "early_stop", r.early_stop);
  read(j, "consensus_stop", r.consensus_stop);
  read(j, "warmup_first", r.warmup_first);
  read(j, "confidence_window", r.confidence_window);
  read(j, "keep_fraction", r.keep_fraction);
  read(j, "consensus_share", r.consensus_share);
  read(j, "scatter_stop", r.scatter_stop);
  read(j, "question", r.question);
}

void fill(const Field& j, ConfidenceSummary& c) {
  read(j, "mean", c.mean);
  read(j, "lowest_group", c.lowest_group);
  read(j, "bottom10", c.bottom10);
  read(j, "tail", c.tail);
  read(j, "tokens", c.tokens);
}

void fill(const Field& j, Usage& u) {
  read(j, "prompt_tokens", u.prompt_tokens);
  read(j, "generated_tokens", u.generated_tokens);
  read(j, "prefill_seconds", u.prefill_seconds);
  read(j, "decode_seconds", u.decode_seconds);
  read(j, "total_seconds", u.total_seconds);
  read(j, "tokens_per_second", u.tokens_per_second);
}

AgentTrace agent_of(const Field& j) {
  j.require_object();
  AgentTrace a;
  a.id = j.required("id").integer<int32_t>();
  read(j, "round", a.round);
  read(j, "role", a.role);
  read(j, "seed", a.seed);
  read_name(j, "stop_reason", a.stop_reason, stop_of);
  read(j, "thinking", a.thinking);
  read_list(j, "steps", a.steps, [](const Field& s) {
    s.require_object();
    ReasoningStep step;
    read(s, "index", step.index);
    read(s, "text", step.text);
    read(s, "first_token", step.first_token);
    read(s, "end_token", step.end_token);
    return step;
  });
  read(j, "answer_text", a.answer_text);
  read(j, "answer", a.answer);
  read(j, "normalized_answer", a.normalized_answer);
  read(j, "thinking_tokens", a.thinking_tokens);
  read(j, "answer_tokens", a.answer_tokens);
  read(j, "forced_tokens", a.forced_tokens);
  read(j, "budget_closed", a.budget_closed);
  read_object(j, "confidence", a.confidence, [](const Field& f, ConfidenceSummary& c) { fill(f, c); });
  read_list(j, "token_confidence", a.token_confidence,
            [](const Field& c) { return static_cast<float>(c.number()); });
  read(j, "vote_weight", a.vote_weight);
  return a;
}

VoteEntry vote_of(const Field& j) {
  j.require_object();
  VoteEntry v;
  read(j, "answer", v.answer);
  read(j, "display", v.display);
  read(j, "votes", v.votes);
  read(j, "weight", v.weight);
  read(j, "share", v.share);
  read_list(j, "agents", v.agents, [](const Field& id) { return id.integer<int32_t>(); });
  return v;
}

Escalation escalation_of(const Field& j) {
  j.require_object();
  Escalation e;
  read_name(j, "from", e.from, mode_of);
  read_name(j, "to", e.to, mode_of);
  read(j, "reason", e.reason);
  read(j, "value", e.value);
  read(j, "threshold", e.threshold);
  return e;
}

template <class T, size_t N, class F>
void read_array(const Field& object, const char* key, std::array<T, N>& target, F&& one) {
  auto f = object.member(key);
  if (!f) return;
  size_t count = 0;
  f->each([&](const Field& e) {
    if (count == N) f->fail(fmt::format("expected {} numbers, got more", N));
    target[count++] = one(e);
  });
  if (count != N) f->fail(fmt::format("expected {} numbers, got {}", N, count));
}

VisualAction visual_action_of(const Field& j) {
  j.require_object();
  VisualAction a;
  read(j, "agent", a.agent);
  read(j, "kind", a.kind);
  read(j, "image", a.image);
  read_array(j, "relative", a.relative, [](const Field& x) { return x.number(); });
  read_array(j, "box", a.box, [](const Field& x) { return x.integer<int32_t>(); });
  read(j, "token", a.token);
  read(j, "applied", a.applied);
  read(j, "crop_width", a.crop_width);
  read(j, "crop_height", a.crop_height);
  return a;
}

}  // namespace

ReasoningTrace ReasoningTrace::from_json(std::string_view text, const std::string& source) {
  const nlohmann::json document = detail::parse_json(text, source);
  const Field root(document, "", source);
  if (!document.is_object()) root.fail(std::string("expected a trace object, got ") + document.type_name());
  const auto version = root.required("schema_version").integer<int64_t>();
  if (version != kSchemaVersion)
    root.required("schema_version").fail(fmt::format("this reader knows version {}, got {}", kSchemaVersion, version));

  ReasoningTrace t;
  read_object(root, "request", t.request, [](const Field& f, RequestRecord& r) { fill(f, r); });
  read_name(root, "mode_used", t.mode_used, mode_of);
  read(root, "final_answer", t.final_answer);
  read(root, "final_text", t.final_text);
  read(root, "final_agent", t.final_agent);
  root.required("agents").each([&](const Field& a) { t.agents.push_back(agent_of(a)); });
  read_list(root, "votes", t.votes, vote_of);
  read_list(root, "escalations", t.escalations, escalation_of);
  read_list(root, "visual_actions", t.visual_actions, visual_action_of);
  if (auto f = root.member("early_stop_threshold"); f && !f->is_null()) t.early_stop_threshold = f->number();
  read(root, "workspace", t.workspace);
  read_object(root, "usage", t.usage, [](const Field& f, Usage& u) { fill(f, u); });
  return t;
}

}  // namespace musespark
