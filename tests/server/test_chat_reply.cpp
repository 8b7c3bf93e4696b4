// musespark serve: engine events into the assistant message, the response
// and chunk objects, SSE framing and the event stream's JSON.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "serve/chat_reply.hpp"
#include "serve/event_json.hpp"
#include "serve/sse.hpp"

using namespace musespark;
using namespace musespark::serve;
using Json = nlohmann::json;

namespace {

Event delta(int32_t agent, std::string_view text, bool thinking, int32_t round = 1) {
  Event e{EventKind::text_delta};
  e.agent = agent;
  e.round = round;
  e.text = text;
  e.in_thinking = thinking;
  return e;
}

AgentTrace agent(int32_t id, std::string answer, AgentStop stop, int64_t answer_tokens = 3) {
  AgentTrace a;
  a.id = id;
  a.answer = answer;
  a.answer_text = "The answer is " + answer + ".";
  a.normalized_answer = answer;
  a.thinking_tokens = 10;
  a.answer_tokens = answer_tokens;
  a.confidence.mean = 2.5;
  a.stop_reason = stop;
  return a;
}

// Feeds events; returns the deltas' concatenation.
Delta feed(ReplyBuilder& reply, const std::vector<Event>& events) {
  Delta all;
  for (const Event& e : events) {
    Delta d;
    reply.on_event(e, d);
    all.reasoning += d.reasoning;
    all.content += d.content;
  }
  return all;
}

}  // namespace

TEST_CASE("serve: the stop filter holds back what may become a stop string") {
  StopFilter f({"STOP", "\n\n"});
  CHECK(f.push("Hello ST") == "Hello");  // " ST" may begin STOP: held
  CHECK(f.push("ART") == " START");
  CHECK(f.push(" and\n") == " and");
  CHECK(f.push("\nmore") == "");  // "\n\n" stops
  CHECK(f.stopped());
  CHECK(f.push("after") == "");
  CHECK(f.flush() == "");

  StopFilter plain({});
  CHECK(plain.push("\n a  ") == "a");  // leading whitespace is dropped; trailing waits for more text
  CHECK(plain.push("b \n") == "  b");
  CHECK(plain.flush() == "");  // and is dropped at the end
  CHECK_FALSE(plain.stopped());
}

TEST_CASE("serve: instant streams its answer as content, and a stop string ends the run") {
  ReplyBuilder reply(Mode::instant, {"##"});
  Delta d;
  CHECK(reply.on_event(delta(0, "hmm", true), d));
  CHECK(d.reasoning == "hmm");
  d = {};
  CHECK(reply.on_event(delta(0, "4", false), d));
  CHECK(reply.on_event(delta(0, "2 #", false), d));
  CHECK(d.content == "42");
  d = {};
  CHECK_FALSE(reply.on_event(delta(0, "# more", false), d));  // cancel the run
  CHECK(reply.content() == "42");
  CHECK(reply.reasoning() == "hmm");

  ReasoningTrace t;
  t.agents.push_back(agent(0, "", AgentStop::cancelled, 4));
  CHECK(reply.finish_reason(t) == "stop");
  CHECK(reply.content_tokens(t) == 4);

  ReplyBuilder cut(Mode::instant, {});
  Delta all = feed(cut, {delta(0, "Paris", false)});
  Event final_event{EventKind::final_answer};
  final_event.trace = &t;
  t.agents[0].stop_reason = AgentStop::budget;
  all = feed(cut, {final_event});
  CHECK(cut.content() == "Paris");
  CHECK(cut.finish_reason(t) == "length");  // it ran out of tokens
}

TEST_CASE("serve: multi-agent modes log the reasoning and answer with the winner at the end") {
  ReasoningTrace t;
  t.agents = {agent(0, "12", AgentStop::eos), agent(1, "", AgentStop::low_confidence), agent(2, "12", AgentStop::eos)};
  t.votes = {VoteEntry{"12", "12", 2, 5.0, 1.0, {0, 2}}};
  t.final_agent = 2;
  t.final_text = "  The answer is 12.\n";
  Escalation x{Mode::instant, Mode::thinking, "low_confidence", 1.5, 2.0};

  ReplyBuilder reply(Mode::automatic, {});
  std::vector<Event> events;
  events.push_back(delta(0, "First para", true));
  events.push_back(delta(1, "Other", true));
  events.push_back(delta(0, "graph.\n\nSecond", true));
  events.push_back(delta(0, "The answer is 12.", false));  // a draft: not in content
  Event esc{EventKind::escalation};
  esc.escalation = &x;
  events.push_back(esc);
  Event fin0{EventKind::agent_finished};
  fin0.agent_trace = &t.agents[0];
  events.push_back(fin0);
  Event fin1{EventKind::agent_finished};
  fin1.agent_trace = &t.agents[1];
  events.push_back(fin1);
  Event final_event{EventKind::final_answer};
  final_event.trace = &t;
  events.push_back(final_event);
  Delta all = feed(reply, events);

  CHECK(all.reasoning == reply.reasoning());
  CHECK(reply.reasoning() ==
        "agent 0: First paragraph.\n\n"
        "escalating from instant to thinking: low_confidence (1.5, needed 2)\n\n"
        "agent 0: Second\n\n"
        "agent 0 answered \"12\" (eos, 13 tokens, confidence 2.50)\n\n"
        "agent 1: Other\n\n"
        "agent 1 stopped without an answer (low_confidence, 13 tokens, confidence 2.50)\n\n"
        "vote: \"12\" 2 votes, 100%");
  CHECK(reply.content() == "The answer is 12.");  // trimmed
  CHECK(all.content == reply.content());
  CHECK(reply.finish_reason(t) == "stop");
  CHECK(reply.content_tokens(t) == 3);

  // No answer at all, because of a budget: "length".
  ReasoningTrace none;
  none.agents = {agent(0, "", AgentStop::budget)};
  CHECK(reply.finish_reason(none) == "length");
  CHECK(reply.content_tokens(none) == 0);
}

TEST_CASE("serve: response and chunk objects have OpenAI's shapes") {
  ResponseInfo info{"chatcmpl-1", 1700000000, "tiny"};
  ChoiceOutcome c;
  c.reasoning = "thought";
  c.content = "42";
  c.finish_reason = "stop";
  c.content_tokens = 2;
  c.trace.usage.prompt_tokens = 10;
  c.trace.usage.generated_tokens = 30;
  c.trace.final_answer = "42";

  Json j = Json::parse(completion_json(info, {c, c}, true));
  CHECK(j["object"] == "chat.completion");
  CHECK(j["id"] == "chatcmpl-1");
  CHECK(j["created"] == 1700000000);
  CHECK(j["model"] == "tiny");
  REQUIRE(j["choices"].size() == 2);
  CHECK(j["choices"][1]["index"] == 1);
  CHECK(j["choices"][0]["message"]["role"] == "assistant");
  CHECK(j["choices"][0]["message"]["content"] == "42");
  CHECK(j["choices"][0]["message"]["reasoning_content"] == "thought");
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK(j["choices"][0]["logprobs"].is_null());
  CHECK(j["choices"][0]["musespark_trace"]["schema_version"] == 1);
  CHECK(j["choices"][0]["musespark_trace"]["final_answer"] == "42");
  CHECK(j["usage"]["prompt_tokens"] == 20);
  CHECK(j["usage"]["completion_tokens"] == 60);
  CHECK(j["usage"]["total_tokens"] == 80);
  CHECK(j["usage"]["completion_tokens_details"]["reasoning_tokens"] == 56);
  CHECK_FALSE(Json::parse(completion_json(info, {c}, false))["choices"][0].contains("musespark_trace"));

  Json role = Json::parse(role_chunk_json(info, 0, true));
  CHECK(role["object"] == "chat.completion.chunk");
  CHECK(role["choices"][0]["delta"] == Json{{"role", "assistant"}, {"content", ""}});
  CHECK(role["choices"][0]["finish_reason"].is_null());
  CHECK(role.contains("usage"));
  CHECK(role["usage"].is_null());

  Json d = Json::parse(delta_chunk_json(info, 2, Delta{"r", ""}, false));
  CHECK(d["choices"][0]["index"] == 2);
  CHECK(d["choices"][0]["delta"] == Json{{"reasoning_content", "r"}});  // no empty content key
  CHECK_FALSE(d.contains("usage"));

  Json fin = Json::parse(finish_chunk_json(info, 0, "length", &c.trace, false));
  CHECK(fin["choices"][0]["delta"] == Json::object());
  CHECK(fin["choices"][0]["finish_reason"] == "length");
  CHECK(fin["choices"][0]["musespark_trace"]["schema_version"] == 1);

  Json usage = Json::parse(usage_chunk_json(info, {c}));
  CHECK(usage["choices"] == Json::array());
  CHECK(usage["usage"]["completion_tokens"] == 30);
}

TEST_CASE("serve: server-sent events framing") {
  CHECK(sse_event(R"({"a":1})") == "data: {\"a\":1}\n\n");
  CHECK(sse_event("one\ntwo\r\nthree") == "data: one\ndata: two\ndata: three\n\n");
  CHECK(sse_event("") == "data: \n\n");
  CHECK(kSseDone == "data: [DONE]\n\n");
}

TEST_CASE("serve: engine events as JSON use the trace's own shapes") {
  Json d = Json::parse(event_json(delta(3, "to\"ken", true, 2)));
  CHECK(d["type"] == "text_delta");
  CHECK(d["agent"] == 3);
  CHECK(d["round"] == 2);
  CHECK(d["text"] == "to\"ken");
  CHECK(d["in_thinking"] == true);

  ReasoningTrace t;
  t.agents = {agent(4, "12", AgentStop::consensus)};
  t.votes = {VoteEntry{"12", "Twelve", 1, 2.0, 1.0, {4}}};
  t.escalations = {Escalation{Mode::thinking, Mode::contemplating, "disagreement", 0.4, 0.6}};
  const Json whole = Json::parse(t.to_json());

  Event fin{EventKind::agent_finished};
  fin.agent = 4;
  fin.agent_trace = &t.agents[0];
  CHECK(Json::parse(event_json(fin))["agent_trace"] == whole["agents"][0]);
  Event votes{EventKind::vote_update};
  votes.votes = &t.votes;
  CHECK(Json::parse(event_json(votes))["votes"] == whole["votes"]);
  Event esc{EventKind::escalation};
  esc.escalation = &t.escalations[0];
  CHECK(Json::parse(event_json(esc))["escalation"] == whole["escalations"][0]);
  Event final_event{EventKind::final_answer};
  final_event.trace = &t;
  final_event.text = "12";
  Json f = Json::parse(event_json(final_event));
  CHECK(f["type"] == "final");
  CHECK(f["answer"] == "12");
  CHECK(f["trace"] == whole);
}
