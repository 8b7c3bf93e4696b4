#include "serve/event_json.hpp"

#include <nlohmann/json.hpp>

namespace musespark::serve {
namespace {

using Json = nlohmann::ordered_json;

// A part of the trace document, from a trace holding only that part.
Json trace_part(const ReasoningTrace& t, const char* key) { return Json::parse(t.to_json())[key]; }

}  // namespace

std::string event_json(const Event& e) {
  Json j{{"type", event_kind_name(e.kind)}};
  const bool of_an_agent = e.kind == EventKind::agent_started || e.kind == EventKind::text_delta ||
                           e.kind == EventKind::step || e.kind == EventKind::agent_finished;
  if (of_an_agent) {
    j["agent"] = e.agent;
    j["round"] = e.round;
  }
  switch (e.kind) {
    case EventKind::agent_started:
      break;
    case EventKind::text_delta:
      j["text"] = e.text;
      j["in_thinking"] = e.in_thinking;
      j["tokens"] = e.tokens;
      j["confidence"] = e.confidence;
      break;
    case EventKind::step:
      j["text"] = e.text;
      break;
    case EventKind::agent_finished: {
      ReasoningTrace t;
      t.agents.push_back(*e.agent_trace);
      j["agent_trace"] = trace_part(t, "agents")[0];
      break;
    }
    case EventKind::vote_update: {
      ReasoningTrace t;
      t.votes = *e.votes;
      j["votes"] = trace_part(t, "votes");
      break;
    }
    case EventKind::escalation: {
      ReasoningTrace t;
      t.escalations.push_back(*e.escalation);
      j["escalation"] = trace_part(t, "escalations")[0];
      break;
    }
    case EventKind::final_answer:
      j["answer"] = e.text;
      j["trace"] = Json::parse(e.trace->to_json());
      break;
  }
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace musespark::serve
