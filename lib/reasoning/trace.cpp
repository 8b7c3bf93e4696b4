// ReasoningTrace::to_json and the enum names of include/musespark/trace.hpp.
// The document is described field by field in docs/trace.md.
#include "musespark/trace.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

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
