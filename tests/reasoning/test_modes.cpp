// The reasoning modes end to end on tiny random models with the real Qwen3
// tokenizer: budgets, batching, stops, rounds, escalation, events,
// determinism. (Accuracy is measured on the trained default model.)
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "musespark/engine.hpp"
#include "musespark/error.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;

namespace {

// A template that opens <think> itself, as Qwen3 Thinking-2507 does.
const Engine& thinker() {
  static Engine engine = Engine::load(tiny_model(
      "modes-thinker", "--arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 --intermediate 64 "
                       "--tie --seed 31 --open-think --tokenizer-from " + qwen3_tokenizer()));
  return engine;
}

// <|im_end|> (151645) comes up at random moments: answers end at different times.
const Engine& stopper() {
  static Engine engine = Engine::load(tiny_model(
      "modes-stopper", "--arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 --intermediate 64 "
                       "--no-tie --boost 151645:5 --seed 32 --open-think --tokenizer-from " + qwen3_tokenizer()));
  return engine;
}

Request thinking_request(int agents, int thinking_tokens, int answer_tokens, uint64_t seed = 1) {
  Request r = Request::question("What is 12 + 30?", Mode::thinking, Effort::low);
  r.budgets.agents = agents;
  r.budgets.max_thinking_tokens = thinking_tokens;
  r.budgets.max_answer_tokens = answer_tokens;
  r.seed = seed;
  r.early_stop = false;
  r.consensus_stop = false;
  return r;
}

nlohmann::json without_timings(const ReasoningTrace& t) {
  auto j = nlohmann::json::parse(t.to_json());
  j.erase("usage");
  return j;
}

int count_stops(const ReasoningTrace& t, AgentStop stop) {
  int n = 0;
  for (const auto& a : t.agents) n += a.stop_reason == stop;
  return n;
}

}  // namespace

TEST_CASE("modes: thinking agents close their thought at the budget, then answer") {
  const Engine& e = thinker();
  Result r = e.ask(thinking_request(3, 12, 6));
  const ReasoningTrace& t = r.trace;
  REQUIRE(t.agents.size() == 3);
  const int64_t closing = static_cast<int64_t>(e.tokenizer().encode("\n\nI have thought enough; time to answer.\n</think>\n\n").size());
  int64_t generated = 0;
  for (const auto& a : t.agents) {
    CAPTURE(a.id);
    CHECK(a.budget_closed);
    CHECK(a.forced_tokens == closing);
    CHECK(a.thinking_tokens == 12 + closing);
    CHECK(a.answer_tokens <= 6);
    CHECK(a.thinking.find("</think>") == std::string::npos);
    CHECK(a.thinking.find("<think>") == std::string::npos);
    CHECK(a.answer_text.find("</think>") == std::string::npos);
    CHECK(a.thinking.find("time to answer") != std::string::npos);
    CHECK(a.confidence.tokens == 12 + a.answer_tokens);  // forced tokens carry no confidence
    CHECK(a.confidence.mean > 0);
    generated += a.thinking_tokens + a.answer_tokens;
  }
  // One prompt prefill for all agents.
  const auto prompt = e.tokenizer().encode(e.chat_template().render(std::vector<ChatMessage>{{"user", "What is 12 + 30?"}}));
  CHECK(t.usage.prompt_tokens == static_cast<int64_t>(prompt.size()));
  CHECK(t.usage.generated_tokens == generated);
  int votes = 0;
  for (const auto& v : t.votes) votes += v.votes;
  int answered = 0;
  for (const auto& a : t.agents) answered += !a.normalized_answer.empty();
  CHECK(votes == answered);
  if (!t.votes.empty()) {
    CHECK(t.final_answer == t.votes.front().answer);
    CHECK(r.answer == t.agents[t.final_agent].answer);
  }
}

TEST_CASE("modes: the same request and seed give the same trace, another seed does not") {
  const Engine& e = thinker();
  Request req = thinking_request(3, 10, 5, 42);
  req.early_stop = true;
  req.consensus_stop = true;
  auto a = without_timings(e.ask(req).trace);
  auto b = without_timings(e.ask(req).trace);
  CHECK(a == b);
  req.seed = 43;
  auto c = without_timings(e.ask(req).trace);
  CHECK(a["agents"][0]["thinking"] != c["agents"][0]["thinking"]);
}

TEST_CASE("modes: an agent decoded in a batch writes what it writes alone") {
  const Engine& e = thinker();
  Result many = e.ask(thinking_request(4, 10, 5, 7));
  Result one = e.ask(thinking_request(1, 10, 5, 7));
  CHECK(many.trace.agents[0].thinking == one.trace.agents[0].thinking);
  CHECK(many.trace.agents[0].answer_text == one.trace.agents[0].answer_text);
  CHECK(many.trace.agents[1].thinking != one.trace.agents[0].thinking);
}

TEST_CASE("modes: instant is one greedy agent that does not think") {
  const Engine& e = thinker();
  Request req = Request::question("What is 12 + 30?", Mode::instant);
  req.budgets.max_answer_tokens = 8;
  req.seed = 1;
  Result a = e.ask(req);
  req.seed = 2;
  Result b = e.ask(req);
  REQUIRE(a.trace.agents.size() == 1);
  CHECK(a.trace.agents[0].role == "instant");
  CHECK(a.trace.agents[0].thinking.empty());
  CHECK(a.trace.agents[0].thinking_tokens == 0);
  CHECK(a.trace.agents[0].answer_tokens > 0);
  CHECK(a.trace.mode_used == Mode::instant);
  CHECK(a.trace.agents[0].answer_text == b.trace.agents[0].answer_text);  // greedy: the seed does not matter
}

TEST_CASE("modes: confidence early stop cuts weak agents, never warm-up agents") {
  const Engine& e = thinker();
  Request req = thinking_request(8, 48, 4, 5);
  req.early_stop = true;
  req.confidence_window = 8;
  req.warmup_agents = 2;
  req.keep_fraction = 0.05;  // threshold near the warm-ups' best: most others fall below
  // DeepConf's schedule: the others start only once both warm-ups are done.
  std::vector<std::pair<EventKind, int>> order;
  Result strict = e.ask(req, [&](const Event& ev) {
    if (ev.kind == EventKind::agent_started || ev.kind == EventKind::agent_finished) order.push_back({ev.kind, ev.agent});
    return true;
  });
  REQUIRE(order.size() == 16);
  CHECK(order[0] == std::make_pair(EventKind::agent_started, 0));
  CHECK(order[1] == std::make_pair(EventKind::agent_started, 1));
  CHECK(order[2].first == EventKind::agent_finished);
  CHECK(order[3].first == EventKind::agent_finished);
  CHECK(order[4] == std::make_pair(EventKind::agent_started, 2));
  const auto& t = strict.trace;
  REQUIRE(t.early_stop_threshold.has_value());
  int stopped = 0;
  for (const auto& a : t.agents) {
    if (a.stop_reason != AgentStop::low_confidence) continue;
    ++stopped;
    CHECK(a.id >= 2);                       // not a warm-up agent
    CHECK(a.normalized_answer.empty());     // it does not vote
    CHECK(a.vote_weight == 0);
    CHECK(a.thinking_tokens <= 48);
    CHECK(a.answer_tokens == 0);            // it stopped while thinking
  }
  CHECK(stopped >= 3);
  req.early_stop = false;
  Result plain = e.ask(req);
  CHECK(count_stops(plain.trace, AgentStop::low_confidence) == 0);
  CHECK(strict.trace.usage.generated_tokens < plain.trace.usage.generated_tokens);
  req.early_stop = true;
  req.keep_fraction = 1.0;  // threshold at the weakest warm-up: fewer stops
  CHECK(count_stops(e.ask(req).trace, AgentStop::low_confidence) < stopped);
  // All together: every agent has the same budget, so all finish with the
  // warm-ups and nothing is left to cut, though the threshold is known.
  req.keep_fraction = 0.05;
  req.warmup_first = false;
  Result together = e.ask(req);
  CHECK(together.trace.early_stop_threshold.has_value());
  CHECK(count_stops(together.trace, AgentStop::low_confidence) == 0);
}

TEST_CASE("modes: consensus stops the remaining agents once the vote is settled") {
  const Engine& e = stopper();
  Request req = thinking_request(8, 1, 64, 11);
  // Every answer counts as the same answer: the vote settles early.
  req.extractor.extract = [](std::string_view text) { return text.empty() ? std::string() : std::string("same"); };
  req.consensus_stop = true;
  Result r = e.ask(req);
  const auto& t = r.trace;
  const int consensus = count_stops(t, AgentStop::consensus);
  CHECK(consensus >= 1);
  REQUIRE(t.votes.size() == 1);
  CHECK(t.votes[0].votes > consensus);  // the leader had more votes than agents left
  for (const auto& a : t.agents)
    if (a.stop_reason == AgentStop::consensus) CHECK(a.vote_weight == 0);
  req.consensus_stop = false;
  CHECK(count_stops(e.ask(req).trace, AgentStop::consensus) == 0);
}

// `agents` agents, two of them warm-ups run first, early stop, consensus stop with share 0.9.
Request consensus_share_request(int agents) {
  Request req = thinking_request(agents, 8, 4, 13);
  req.early_stop = true;
  req.keep_fraction = 1.0;
  req.warmup_agents = 2;
  req.consensus_stop = true;
  req.consensus_share = 0.9;
  return req;
}

TEST_CASE("modes: with a consensus share, agreeing warm-ups spare the agents waiting for them") {
  const Engine& e = thinker();
  Request req = consensus_share_request(8);
  // Every answer counts as the same answer: the two warm-ups agree.
  req.extractor.extract = [](std::string_view text) { return text.empty() ? std::string() : std::string("same"); };
  Result agreed = e.ask(req);
  const auto& t = agreed.trace;
  REQUIRE(t.agents.size() == 8);
  CHECK(t.request.consensus_share == 0.9);
  for (const auto& a : t.agents) {
    if (a.id < 2) {
      CHECK(a.stop_reason != AgentStop::consensus);  // warm-ups run to their end and vote
      CHECK(!a.normalized_answer.empty());
    } else {
      CHECK(a.stop_reason == AgentStop::consensus);  // stopped before writing anything
      CHECK(a.thinking_tokens + a.answer_tokens == 0);
    }
  }
  REQUIRE(t.votes.size() == 1);
  CHECK(t.votes[0].votes == 2);
  CHECK(t.final_answer == "same");
  CHECK(nlohmann::json::parse(t.to_json())["request"]["consensus_share"] == 0.9);

  // Off (share 0), the same request runs all eight.
  req.consensus_share = 0;
  Result all = e.ask(req);
  CHECK(count_stops(all.trace, AgentStop::consensus) == 0);
  CHECK(agreed.trace.usage.generated_tokens * 3 < all.trace.usage.generated_tokens);

  // Warm-ups that disagree do not end the round.
  req.consensus_share = 0.9;
  int calls = 0;
  req.extractor.extract = [&](std::string_view text) { return text.empty() ? std::string() : std::to_string(calls++); };
  CHECK(count_stops(e.ask(req).trace, AgentStop::consensus) == 0);

  req.consensus_share = 1.5;
  CHECK_THROWS_AS(e.ask(req), Error);
}

TEST_CASE("modes: with a consensus share, the waiting agents start one at a time while the votes disagree") {
  const Engine& e = thinker();
  Request req = consensus_share_request(6);
  int calls = 0;  // every answer differs: the votes never agree
  req.extractor.extract = [&](std::string_view text) { return text.empty() ? std::string() : std::to_string(calls++); };
  auto order = [&](const Request& r) {
    std::vector<std::pair<EventKind, int32_t>> events;
    const Result result = e.ask(r, [&](const Event& ev) {
      if (ev.kind == EventKind::agent_started || ev.kind == EventKind::agent_finished) events.emplace_back(ev.kind, ev.agent);
      return true;
    });
    REQUIRE(result.trace.agents.size() == 6);
    CHECK(count_stops(result.trace, AgentStop::consensus) == 0);
    return events;
  };
  auto at = [](const std::vector<std::pair<EventKind, int32_t>>& events, EventKind kind, int32_t agent) {
    const auto it = std::find(events.begin(), events.end(), std::pair{kind, agent});
    REQUIRE(it != events.end());
    return it - events.begin();
  };
  const auto waves = order(req);
  // Agent 2 starts once both warm-ups have finished, and each later one once
  // the one before it has.
  for (int32_t warmup : {0, 1})
    CHECK(at(waves, EventKind::agent_started, 2) > at(waves, EventKind::agent_finished, warmup));
  for (int32_t later : {3, 4, 5})
    CHECK(at(waves, EventKind::agent_started, later) > at(waves, EventKind::agent_finished, later - 1));

  // Without a share, all four start together once the warm-ups have finished.
  req.consensus_share = 0;
  const auto together = order(req);
  CHECK(at(together, EventKind::agent_started, 5) < at(together, EventKind::agent_finished, 2));
  CHECK(at(together, EventKind::agent_started, 2) > at(together, EventKind::agent_finished, 1));
}

TEST_CASE("modes: a scatter stop ends the round once that many agents voted and no two agreed") {
  const Engine& e = thinker();
  Request req = consensus_share_request(6);
  req.scatter_stop = 3;
  int calls = 0;  // every answer differs
  req.extractor.extract = [&](std::string_view text) { return text.empty() ? std::string() : std::to_string(calls++); };
  const Result scattered = e.ask(req);
  const auto& t = scattered.trace;
  REQUIRE(t.agents.size() == 6);
  CHECK(t.request.scatter_stop == 3);
  CHECK(nlohmann::json::parse(t.to_json())["request"]["scatter_stop"] == 3);
  // The warm-ups and agent 2 voted; the three after it never started.
  REQUIRE(t.votes.size() == 3);
  for (const auto& row : t.votes) CHECK(row.votes == 1);
  for (const auto& a : t.agents) {
    if (a.id < 3) {
      CHECK(a.stop_reason != AgentStop::consensus);
      CHECK(!a.normalized_answer.empty());
    } else {
      CHECK(a.stop_reason == AgentStop::consensus);
      CHECK(a.thinking_tokens + a.answer_tokens == 0);
    }
  }
  CHECK(t.final_answer == t.votes[0].answer);

  // Off, the same disagreeing agents all run.
  req.scatter_stop = 0;
  const Result all = e.ask(req);
  CHECK(count_stops(all.trace, AgentStop::consensus) == 0);
  CHECK(all.trace.votes.size() == 6);
  CHECK(scattered.trace.usage.generated_tokens < all.trace.usage.generated_tokens);

  for (int bad : {1, -2}) {
    req.scatter_stop = bad;
    CHECK_THROWS_WITH_AS(e.ask(req), doctest::Contains("scatter_stop"), Error);
  }
}

// 3 agents, then 2 refine agents, short budgets, no early or consensus stop.
Request small_contemplation() {
  Request req = Request::question("What is 12 + 30?", Mode::contemplating);
  req.budgets.agents = 3;
  req.budgets.refine_agents = 2;
  req.budgets.max_thinking_tokens = 8;
  req.budgets.max_answer_tokens = 4;
  req.early_stop = false;
  req.consensus_stop = false;
  return req;
}

TEST_CASE("modes: contemplating refines with a workspace and shares the prompt prefix") {
  const Engine& e = thinker();
  Request req = small_contemplation();
  req.aggregator = true;
  Result r = e.ask(req);
  const auto& t = r.trace;
  REQUIRE(t.agents.size() == 6);
  std::map<int, int> rounds;
  for (const auto& a : t.agents) rounds[a.round]++;
  CHECK(rounds[1] == 3);
  CHECK(rounds[2] == 2);
  CHECK(rounds[3] == 1);
  CHECK(t.agents.back().role == "aggregator");
  CHECK(t.mode_used == Mode::contemplating);
  CHECK(!t.workspace.empty());
  CHECK(t.workspace.size() <= 1200);
  // Round 2's prompt holds round 1's up to the question's text: that part was not prefilled again.
  const auto p1 = e.tokenizer().encode(e.chat_template().render(std::vector<ChatMessage>{{"user", "What is 12 + 30?"}}));
  CHECK(t.usage.prompt_tokens > static_cast<int64_t>(p1.size()));
  // Rounds 2 and 3 each prefill only their user text and what follows it:
  // workspace, instruction, the question again (each workspace at most 1200 bytes).
  const int64_t later_prompts = t.usage.prompt_tokens - static_cast<int64_t>(p1.size());
  const auto workspace_tokens = static_cast<int64_t>(e.tokenizer().encode(t.workspace).size());
  const auto question_tokens = static_cast<int64_t>(e.tokenizer().encode("What is 12 + 30?").size());
  CHECK(later_prompts >= workspace_tokens);
  CHECK(later_prompts < 2 * (workspace_tokens + question_tokens + 40));
}

TEST_CASE("modes: contemplating's final vote counts both rounds' answers") {
  const Engine& e = thinker();
  Request req = small_contemplation();
  const auto& t = e.ask(req).trace;
  std::map<int, int> answered;  // round -> agents with an answer
  double weight = 0;
  for (const auto& a : t.agents)
    if (!a.normalized_answer.empty()) {
      answered[a.round]++;
      weight += a.vote_weight;
    }
  REQUIRE(answered[1] > 0);
  REQUIRE(answered[2] > 0);
  int64_t votes = 0;
  double tallied = 0;
  for (const auto& v : t.votes) {
    votes += v.votes;
    tallied += v.weight;
  }
  CHECK(votes == answered[1] + answered[2]);
  CHECK(tallied == doctest::Approx(weight));
  CHECK(t.final_answer == t.votes.front().answer);
}

TEST_CASE("modes: auto escalates on low confidence, then on disagreement") {
  const Engine& e = thinker();
  Request req = Request::question("What is 12 + 30?", Mode::automatic, Effort::minimal);
  req.budgets.agents = 2;
  req.budgets.refine_agents = 2;
  req.budgets.max_thinking_tokens = 6;
  req.budgets.max_answer_tokens = 4;
  req.auto_confidence_threshold = 1e9;   // Instant is never confident enough
  req.auto_agreement_threshold = 1.01;   // Thinking never agrees enough
  Result r = e.ask(req);
  REQUIRE(r.trace.escalations.size() == 2);
  CHECK(r.trace.escalations[0].from == Mode::instant);
  CHECK(r.trace.escalations[0].to == Mode::thinking);
  CHECK(r.trace.escalations[0].reason == "low_confidence");
  CHECK(r.trace.escalations[0].value == doctest::Approx(r.trace.agents[0].confidence.mean));
  CHECK(r.trace.escalations[1].to == Mode::contemplating);
  CHECK(r.trace.escalations[1].reason == "disagreement");
  CHECK(r.trace.mode_used == Mode::contemplating);

  req.auto_confidence_threshold = 1e-9;  // Instant is always confident enough
  Result calm = e.ask(req);
  CHECK(calm.trace.escalations.empty());
  CHECK(calm.trace.agents.size() == 1);
  CHECK(calm.trace.mode_used == Mode::instant);
}

TEST_CASE("modes: auto takes the model's calibrated threshold unless the request sets one") {
  // The thinker's files, with config.json's "musespark" block set to `threshold`.
  auto calibrated = [](const std::string& name, double threshold) {
    const auto from = thinker().model_info().directory;
    const auto dir = std::filesystem::path(MUSESPARK_BINARY_DIR) / "test-models" / name;
    std::filesystem::remove_all(dir);
    std::filesystem::copy(from, dir, std::filesystem::copy_options::recursive);
    std::ifstream in(dir / "config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    in.close();
    config["musespark"] = {{"auto_confidence_threshold", threshold}};
    std::ofstream(dir / "config.json") << config.dump(2);
    return Engine::load(dir);
  };
  Request req = Request::question("What is 12 + 30?", Mode::automatic, Effort::minimal);
  req.budgets.agents = 2;
  req.budgets.max_thinking_tokens = 6;
  req.budgets.max_answer_tokens = 4;
  req.auto_agreement_threshold = 0;  // no Contemplating

  const Engine doubtful = calibrated("modes-auto-doubtful-" + std::to_string(::getpid()), 1e9);
  CHECK(doubtful.model_info().auto_confidence_threshold == 1e9);
  Result r = doubtful.ask(req);
  REQUIRE(r.trace.escalations.size() == 1);
  CHECK(r.trace.escalations[0].threshold == 1e9);
  CHECK(r.trace.mode_used == Mode::thinking);
  req.auto_confidence_threshold = 1e-9;  // the request's own wins
  CHECK(doubtful.ask(req).trace.escalations.empty());

  req.auto_confidence_threshold = 0;
  const Engine sure = calibrated("modes-auto-sure-" + std::to_string(::getpid()), 1e-9);
  CHECK(sure.ask(req).trace.escalations.empty());
  std::filesystem::remove_all(doubtful.model_info().directory);
  std::filesystem::remove_all(sure.model_info().directory);
}

TEST_CASE("modes: deadline and total token cap stop the agents") {
  const Engine& e = thinker();
  Request req = thinking_request(3, 2000, 100, 3);
  req.budgets.deadline_ms = 150;
  Result late = e.ask(req);
  CHECK(count_stops(late.trace, AgentStop::deadline) == 3);
  CHECK(late.trace.usage.total_seconds < 5.0);

  req = thinking_request(3, 2000, 100, 3);
  req.budgets.max_total_tokens = 30;
  Result capped = e.ask(req);
  CHECK(count_stops(capped.trace, AgentStop::budget) == 3);
  CHECK(capped.trace.usage.generated_tokens >= 30);
  CHECK(capped.trace.usage.generated_tokens <= 30 + 3);  // at most one step past the cap
}

TEST_CASE("modes: events stream the trace as it happens, and a callback can cancel") {
  const Engine& e = thinker();
  std::map<EventKind, int> count;
  std::map<int, std::string> thinking, answer;
  int vote_updates = 0;
  Result r = e.ask(thinking_request(2, 10, 5, 9), [&](const Event& ev) {
    count[ev.kind]++;
    if (ev.kind == EventKind::text_delta) (ev.in_thinking ? thinking : answer)[ev.agent] += std::string(ev.text);
    if (ev.kind == EventKind::vote_update) vote_updates++;
    return true;
  });
  CHECK(count[EventKind::agent_started] == 2);
  CHECK(count[EventKind::agent_finished] == 2);
  CHECK(count[EventKind::final_answer] == 1);
  for (const auto& a : r.trace.agents) {
    CHECK(thinking[a.id] == a.thinking);
    CHECK(answer[a.id].substr(0, a.answer_text.size()) == a.answer_text);
  }

  int deltas = 0;
  Result cancelled = e.ask(thinking_request(2, 200, 50, 9), [&](const Event& ev) {
    return !(ev.kind == EventKind::text_delta && ++deltas >= 5);
  });
  CHECK(count_stops(cancelled.trace, AgentStop::cancelled) == 2);
  CHECK(cancelled.trace.usage.generated_tokens < 20);
}

TEST_CASE("modes: bad requests are refused, naming the field") {
  const Engine& e = thinker();
  auto refused = [&](const Request& r, const std::string& field) {
    try {
      e.ask(r);
      FAIL("not refused: " << field);
    } catch (const Error& err) {
      CHECK(err.kind() == ErrorKind::invalid_argument);
      CHECK(err.field() == field);
    }
  };
  Request r;
  refused(r, "messages");
  r = Request::question("hi");
  r.messages[0].role = "robot";
  refused(r, "messages[0].role");
  r = Request::question("hi");
  r.budgets.agents = 100;
  refused(r, "budgets.agents");
  r = Request::question("hi");
  r.keep_fraction = 0;
  refused(r, "keep_fraction");
  r = Request::question("hi");
  r.sampling = SamplingParams{};
  r.sampling->top_p = 2;
  refused(r, "top_p");
  r = Request::question("hi");
  r.budgets.deadline_ms = -1;
  refused(r, "budgets.deadline_ms");
}

TEST_CASE("modes: one engine answers from several threads at once, as it does from one") {
  const Engine& e = thinker();
  std::vector<Request> requests;
  for (uint64_t seed = 1; seed <= 3; ++seed) requests.push_back(thinking_request(2, 12, 4, seed));
  std::vector<nlohmann::json> alone;
  for (const auto& r : requests) alone.push_back(without_timings(e.ask(r).trace));
  std::vector<nlohmann::json> together(requests.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i)
    threads.emplace_back([&, i] { together[i] = without_timings(e.ask(requests[i]).trace); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < requests.size(); ++i) CHECK(together[i] == alone[i]);
}

TEST_CASE("modes: a prompt longer than the context is context_overflow naming its tokens and the limit") {
  const Engine& e = thinker();
  const int64_t max_context = e.model_info().max_context;
  std::string long_question;
  for (int64_t i = 0; i < max_context; ++i) long_question += " seven";
  for (Mode mode : {Mode::instant, Mode::thinking, Mode::contemplating, Mode::automatic}) {
    CAPTURE(mode_name(mode));
    Request req = Request::question(long_question, mode, Effort::minimal);
    // check() refuses it as ask() does, without running anything.
    for (bool run : {false, true}) {
      CAPTURE(run);
      bool events = false;
      try {
        if (run)
          (void)e.ask(req, [&](const Event&) { return events = true; });
        else
          e.check(req);
        FAIL("no error");
      } catch (const Error& err) {
        CHECK(err.kind() == ErrorKind::context_overflow);
        CHECK(err.field() == "prompt");
        CHECK(err.message().find(fmt::format("context is {} tokens", max_context)) != std::string::npos);
        CHECK(err.message().find("the prompt is ") != std::string::npos);
      }
      CHECK_FALSE(events);
    }
    // One that fits passes check().
    CHECK_NOTHROW(e.check(Request::question("What is 2 + 3?", mode, Effort::minimal)));
  }
  Request empty;
  CHECK_THROWS_AS(e.check(empty), Error);
}
