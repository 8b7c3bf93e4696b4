#include "serve/chat_reply.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "musespark/generate.hpp"
#include "musespark/version.hpp"

namespace musespark::serve {
namespace {

using Json = nlohmann::ordered_json;

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

bool ended_short(AgentStop stop) { return stop == AgentStop::budget || stop == AgentStop::deadline; }

std::string agent_label(int32_t id, int32_t round, const std::string& role) {
  std::string s = fmt::format("agent {}", id);
  if (role == "instant" || role == "aggregator") s += " (" + role + ")";
  else if (round > 1) s += fmt::format(" (round {})", round);
  return s;
}

}  // namespace

std::string StopFilter::start(std::string out) {
  if (!started_) {
    size_t first = 0;
    while (first < out.size() && is_space(out[first])) ++first;
    out.erase(0, first);
    started_ = !out.empty();
  }
  return out;
}

std::string StopFilter::push(std::string_view text) {
  if (stopped_) return "";
  pending_ += text;
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    while (!out.empty() && is_space(out.back())) out.pop_back();
    pending_.clear();
    return start(std::move(out));
  }
  // Hold back the longest tail that could begin a stop string, and trailing
  // whitespace.
  size_t send = pending_.size() - stop_string_holdback(pending_, stop_);
  while (send > 0 && is_space(pending_[send - 1])) --send;
  std::string out = pending_.substr(0, send);
  pending_.erase(0, send);
  return start(std::move(out));
}

std::string StopFilter::flush() {
  if (stopped_) return "";
  std::string out = std::move(pending_);
  pending_.clear();
  while (!out.empty() && is_space(out.back())) out.pop_back();
  return start(std::move(out));
}

ReplyBuilder::ReplyBuilder(Mode mode, std::vector<std::string> stop)
    : live_(mode == Mode::instant), filter_(std::move(stop)) {}

void ReplyBuilder::log(Delta& out, const std::string& entry) {
  std::string text = reasoning_.empty() ? entry : "\n\n" + entry;
  reasoning_ += text;
  out.reasoning += text;
}

void ReplyBuilder::add_content(Delta& out, const std::string& text) {
  content_ += text;
  out.content += text;
}

bool ReplyBuilder::on_event(const Event& e, Delta& out) {
  if (live_) {
    if (e.kind == EventKind::text_delta && e.in_thinking) {
      reasoning_ += e.text;
      out.reasoning += e.text;
    } else if (e.kind == EventKind::text_delta) {
      add_content(out, filter_.push(e.text));
      return !filter_.stopped();
    } else if (e.kind == EventKind::final_answer) {
      add_content(out, filter_.flush());
    }
    return true;
  }
  switch (e.kind) {
    case EventKind::text_delta: {
      if (!e.in_thinking) break;  // drafts: an agent's answer is logged when it finishes
      std::string& buffer = paragraphs_[e.agent];
      buffer += e.text;
      for (size_t brk; (brk = buffer.find("\n\n")) != std::string::npos; buffer.erase(0, brk + 2)) {
        std::string_view para = trim(std::string_view(buffer).substr(0, brk));
        if (!para.empty()) log(out, agent_label(e.agent, e.round, "agent") + ": " + std::string(para));
      }
      break;
    }
    case EventKind::agent_finished: {
      const AgentTrace& a = *e.agent_trace;
      const std::string label = agent_label(a.id, a.round, a.role);
      std::string_view rest = trim(paragraphs_[a.id]);
      if (!rest.empty()) log(out, label + ": " + std::string(rest));
      paragraphs_.erase(a.id);
      const std::string facts = fmt::format("{}, {} tokens, confidence {:.2f}", agent_stop_name(a.stop_reason),
                                            a.thinking_tokens + a.answer_tokens, a.confidence.mean);
      log(out, a.answer.empty() ? fmt::format("{} stopped without an answer ({})", label, facts)
                                : fmt::format("{} answered \"{}\" ({})", label, a.answer, facts));
      break;
    }
    case EventKind::escalation: {
      const Escalation& x = *e.escalation;
      log(out, fmt::format("escalating from {} to {}: {} ({:.3g}, needed {:.3g})", mode_name(x.from), mode_name(x.to),
                           x.reason, x.value, x.threshold));
      break;
    }
    case EventKind::final_answer: {
      const ReasoningTrace& t = *e.trace;
      if (!t.votes.empty()) {
        std::string line = "vote:";
        for (size_t i = 0; i < t.votes.size(); ++i)
          line += fmt::format("{} \"{}\" {} vote{}, {:.0f}%", i ? ";" : "", t.votes[i].display, t.votes[i].votes,
                              t.votes[i].votes == 1 ? "" : "s", 100 * t.votes[i].share);
        log(out, line);
      }
      add_content(out, filter_.push(t.final_text));
      add_content(out, filter_.flush());
      break;
    }
    default: break;
  }
  return true;
}

const AgentTrace* ReplyBuilder::content_agent(const ReasoningTrace& t) const {
  const int32_t id = live_ ? (t.agents.empty() ? -1 : t.agents.front().id) : t.final_agent;
  for (const auto& a : t.agents)
    if (a.id == id) return &a;
  return nullptr;
}

std::string ReplyBuilder::finish_reason(const ReasoningTrace& t) const {
  if (filter_.stopped()) return "stop";
  if (const AgentTrace* a = content_agent(t)) return ended_short(a->stop_reason) ? "length" : "stop";
  for (const auto& a : t.agents)
    if (ended_short(a.stop_reason)) return "length";
  return "stop";
}

int64_t ReplyBuilder::content_tokens(const ReasoningTrace& t) const {
  const AgentTrace* a = content_agent(t);
  return a ? a->answer_tokens : 0;
}

namespace {

Json base_object(const ResponseInfo& info, const char* object) {
  return Json{{"id", info.id},
              {"object", object},
              {"created", info.created},
              {"model", info.model},
              {"system_fingerprint", std::string("musespark-") + MUSESPARK_VERSION_STRING}};
}

// Usage: completion_tokens counts every token the agents generated;
// reasoning_tokens all but the content's own.
Json usage_json(const std::vector<ChoiceOutcome>& choices) {
  int64_t prompt = 0, completion = 0, content = 0;
  for (const auto& c : choices) {
    prompt += c.trace.usage.prompt_tokens;
    completion += c.trace.usage.generated_tokens;
    content += c.content_tokens;
  }
  return Json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion},
              {"prompt_tokens_details", {{"cached_tokens", 0}}},
              {"completion_tokens_details", {{"reasoning_tokens", std::max<int64_t>(0, completion - content)}}}};
}

std::string chunk(const ResponseInfo& info, Json choice, bool usage_field) {
  Json j = base_object(info, "chat.completion.chunk");
  j["choices"] = Json::array({std::move(choice)});
  if (usage_field) j["usage"] = nullptr;
  return dump(j);
}

Json chunk_choice(int32_t index, Json delta, Json finish_reason) {
  return Json{{"index", index}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", std::move(finish_reason)}};
}

}  // namespace

std::string completion_json(const ResponseInfo& info, const std::vector<ChoiceOutcome>& choices, bool with_trace) {
  Json j = base_object(info, "chat.completion");
  Json list = Json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutcome& c = choices[i];
    Json message{{"role", "assistant"}, {"content", c.content}, {"reasoning_content", c.reasoning}, {"refusal", nullptr}};
    Json choice{{"index", i}, {"message", std::move(message)}, {"logprobs", nullptr}, {"finish_reason", c.finish_reason}};
    if (with_trace) choice["musespark_trace"] = Json::parse(c.trace.to_json());
    list.push_back(std::move(choice));
  }
  j["choices"] = std::move(list);
  j["usage"] = usage_json(choices);
  return dump(j);
}

std::string role_chunk_json(const ResponseInfo& info, int32_t index, bool usage_field) {
  return chunk(info, chunk_choice(index, Json{{"role", "assistant"}, {"content", ""}}, nullptr), usage_field);
}

std::string delta_chunk_json(const ResponseInfo& info, int32_t index, const Delta& delta, bool usage_field) {
  Json d = Json::object();
  if (!delta.reasoning.empty()) d["reasoning_content"] = delta.reasoning;
  if (!delta.content.empty()) d["content"] = delta.content;
  return chunk(info, chunk_choice(index, std::move(d), nullptr), usage_field);
}

std::string finish_chunk_json(const ResponseInfo& info, int32_t index, const std::string& finish_reason,
                              const ReasoningTrace* trace, bool usage_field) {
  Json choice = chunk_choice(index, Json::object(), finish_reason);
  if (trace) choice["musespark_trace"] = Json::parse(trace->to_json());
  return chunk(info, std::move(choice), usage_field);
}

std::string usage_chunk_json(const ResponseInfo& info, const std::vector<ChoiceOutcome>& choices) {
  Json j = base_object(info, "chat.completion.chunk");
  j["choices"] = Json::array();
  j["usage"] = usage_json(choices);
  return dump(j);
}

}  // namespace musespark::serve
