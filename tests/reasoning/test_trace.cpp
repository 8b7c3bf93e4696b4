// The trace's JSON document against docs/trace.md, and the enum names.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "musespark/error.hpp"
#include "musespark/trace.hpp"
#include "support.hpp"

using namespace musespark;

namespace {

// The first ```json block of docs/trace.md.
std::string doc_example() {
  std::ifstream in(test_support::source_dir() / "docs/trace.md");
  REQUIRE(in.good());
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string doc = buffer.str();
  const std::string fence = "```json\n";
  size_t begin = doc.find(fence);
  REQUIRE(begin != std::string::npos);
  begin += fence.size();
  size_t end = doc.find("\n```", begin);
  REQUIRE(end != std::string::npos);
  return doc.substr(begin, end - begin);
}

AgentTrace make_agent(int32_t id, std::string role, uint64_t seed, AgentStop stop) {
  AgentTrace a;
  a.id = id;
  a.round = 1;
  a.role = std::move(role);
  a.seed = seed;
  a.stop_reason = stop;
  return a;
}

// The trace of the docs/trace.md example.
ReasoningTrace example_trace() {
  ReasoningTrace t;
  t.request.mode = Mode::automatic;
  t.request.effort = Effort::low;
  t.request.agents = 2;
  t.request.refine_agents = 0;
  t.request.rounds = 1;
  t.request.max_thinking_tokens = 512;
  t.request.max_answer_tokens = 128;
  t.request.max_total_tokens = 0;
  t.request.deadline_ms = 0;
  t.request.seed = 7;
  t.request.temperature = 0.7f;
  t.request.top_p = 0.95f;
  t.request.early_stop = true;
  t.request.question = "What is 6 times 7?";
  t.mode_used = Mode::thinking;
  t.final_answer = "42";
  t.final_text = "The answer is **42**.";
  t.final_agent = 1;

  AgentTrace instant = make_agent(0, "instant", 7, AgentStop::eos);
  instant.answer_text = "48";
  instant.answer = "48";
  instant.normalized_answer = "48";
  instant.answer_tokens = 2;
  instant.confidence = {0.9, 0.9, 0.9, 0.9, 2};
  instant.token_confidence = {0.75f, 1.05f};
  instant.vote_weight = 0;

  AgentTrace solver = make_agent(1, "agent", 8, AgentStop::eos);
  solver.thinking = "6 times 7 is 42.\n\nCheck: 42 / 7 = 6.";
  solver.steps = {{0, "6 times 7 is 42.", 0, 7}, {1, "Check: 42 / 7 = 6.", 7, 16}};
  solver.answer_text = "The answer is **42**.";
  solver.answer = "42";
  solver.normalized_answer = "42";
  solver.thinking_tokens = 16;
  solver.answer_tokens = 8;
  solver.confidence = {2.5, 1.75, 1.75, 3.25, 24};
  solver.vote_weight = 1.75;

  AgentTrace stopped = make_agent(2, "agent", 9, AgentStop::low_confidence);
  stopped.thinking = "Six sevens: 36, 42, or maybe";
  stopped.steps = {{0, "Six sevens: 36, 42, or maybe", 0, 9}};
  stopped.thinking_tokens = 9;
  stopped.confidence = {1.2, 0.8, 0.8, 0.8, 9};

  t.agents = {instant, solver, stopped};

  VoteEntry row;
  row.answer = "42";
  row.display = "42";
  row.votes = 1;
  row.weight = 1.75;
  row.share = 1.0;
  row.agents = {1};
  t.votes = {row};
  t.escalations = {{Mode::instant, Mode::thinking, "low_confidence", 0.9, 1.2}};
  t.early_stop_threshold = 1.75;
  t.workspace = "";
  t.usage = {18, 35, 0.05, 1.25, 1.5, 28.0};
  return t;
}

}  // namespace

TEST_CASE("trace: the example of docs/trace.md is what to_json writes") {
  const auto example = nlohmann::json::parse(doc_example());
  const ReasoningTrace trace = example_trace();
  const auto written = nlohmann::json::parse(trace.to_json());
  // Field by field first, so a drift names the field.
  for (auto it = example.begin(); it != example.end(); ++it) {
    CAPTURE(it.key());
    REQUIRE(written.contains(it.key()));
    CHECK(written[it.key()] == it.value());
  }
  CHECK(written.size() == example.size());
  CHECK(written == example);
  // Key order too (ordered_json compares in order).
  CHECK(nlohmann::ordered_json::parse(trace.to_json(2)) == nlohmann::ordered_json::parse(doc_example()));
  // One line by default, deterministic.
  CHECK(trace.to_json().find('\n') == std::string::npos);
  CHECK(trace.to_json() == example_trace().to_json());
  CHECK(trace.to_json().rfind("{\"schema_version\":1,", 0) == 0);
}

TEST_CASE("trace: enum names round trip and unknown names are errors") {
  CHECK(std::string(mode_name(Mode::instant)) == "instant");
  CHECK(std::string(mode_name(Mode::thinking)) == "thinking");
  CHECK(std::string(mode_name(Mode::contemplating)) == "contemplating");
  CHECK(std::string(mode_name(Mode::automatic)) == "auto");
  const char* efforts[] = {"minimal", "low", "medium", "high", "xhigh"};
  for (int i = 0; i < 5; ++i) {
    CHECK(std::string(effort_name(static_cast<Effort>(i))) == efforts[i]);
    CHECK(parse_effort(efforts[i]) == static_cast<Effort>(i));
  }
  for (Mode m : {Mode::instant, Mode::thinking, Mode::contemplating, Mode::automatic})
    CHECK(parse_mode(mode_name(m)) == m);
  const char* stops[] = {"eos", "budget", "low_confidence", "consensus", "deadline", "cancelled"};
  for (int i = 0; i < 6; ++i) CHECK(std::string(agent_stop_name(static_cast<AgentStop>(i))) == stops[i]);

  try {
    parse_mode("automatic", "request.mode");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(e.field() == "request.mode");
    CHECK(std::string(e.what()).find("expected one of instant, thinking, contemplating, auto") != std::string::npos);
  }
  try {
    parse_effort("max");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.field() == "effort");
    CHECK(e.message().find("xhigh") != std::string::npos);
  }
}

TEST_CASE("trace: non-finite numbers are null, bad UTF-8 is replaced, optional fields") {
  ReasoningTrace t;
  t.usage.tokens_per_second = NAN;
  t.usage.decode_seconds = INFINITY;
  AgentTrace a;
  a.thinking = "ok \xFF\xFE bytes";
  a.confidence.mean = NAN;
  a.vote_weight = 0.5;
  t.agents = {a};
  auto j = nlohmann::json::parse(t.to_json());
  CHECK(j["usage"]["tokens_per_second"].is_null());
  CHECK(j["usage"]["decode_seconds"].is_null());
  CHECK(j["usage"]["prefill_seconds"] == 0.0);
  CHECK(j["agents"][0]["confidence"]["mean"].is_null());
  CHECK(j["agents"][0]["thinking"] == "ok \xEF\xBF\xBD\xEF\xBF\xBD bytes");
  CHECK_FALSE(j["agents"][0].contains("token_confidence"));
  CHECK(j["early_stop_threshold"].is_null());
  CHECK(j["final_agent"] == -1);
  CHECK(j["request"]["mode"] == "auto");

  t.agents[0].token_confidence = {1.5f, NAN, 0.1f};
  t.early_stop_threshold = 2.25;
  j = nlohmann::json::parse(t.to_json());
  REQUIRE(j["agents"][0]["token_confidence"].size() == 3);
  CHECK(j["agents"][0]["token_confidence"][0] == 1.5);
  CHECK(j["agents"][0]["token_confidence"][1].is_null());
  CHECK(j["agents"][0]["token_confidence"][2] == 0.1);  // written as 0.1, not 0.100000001
  CHECK(j["early_stop_threshold"] == 2.25);
  // A large seed stays exact.
  t.request.seed = 18446744073709551615ull;
  CHECK(nlohmann::json::parse(t.to_json())["request"]["seed"].get<uint64_t>() == 18446744073709551615ull);
}

namespace {
Error read_error(const std::string& text) {
  try {
    ReasoningTrace::from_json(text, "saved.json");
  } catch (const Error& e) {
    return e;
  }
  FAIL("no error for " << text);
  return Error(ErrorKind::internal, "", "", "");
}
}  // namespace

TEST_CASE("trace: from_json reads what to_json writes, the docs' example included") {
  const ReasoningTrace example = example_trace();
  const ReasoningTrace back = ReasoningTrace::from_json(example.to_json());
  CHECK(back.to_json() == example.to_json());
  CHECK(back.agents.size() == example.agents.size());
  CHECK(back.request.mode == example.request.mode);
  CHECK(ReasoningTrace::from_json(doc_example()).to_json(2) == example.to_json(2));

  // Non-finite numbers (written null) come back NaN and are written null again;
  // the largest seed and per-token confidences survive.
  ReasoningTrace t;
  AgentTrace a;
  a.confidence.mean = NAN;
  a.token_confidence = {1.5f, NAN, 0.1f};
  a.stop_reason = AgentStop::cancelled;
  t.agents = {a};
  t.request.seed = 18446744073709551615ull;
  t.usage.decode_seconds = INFINITY;
  t.mode_used = Mode::contemplating;
  const ReasoningTrace u = ReasoningTrace::from_json(t.to_json());
  CHECK(std::isnan(u.agents[0].confidence.mean));
  CHECK(std::isnan(u.usage.decode_seconds));
  CHECK(u.agents[0].token_confidence.size() == 3);
  CHECK(u.agents[0].token_confidence[2] == 0.1f);
  CHECK(u.request.seed == 18446744073709551615ull);
  CHECK(u.agents[0].stop_reason == AgentStop::cancelled);
  CHECK(u.mode_used == Mode::contemplating);
  CHECK_FALSE(u.early_stop_threshold.has_value());
  CHECK(u.to_json() == t.to_json());
}

TEST_CASE("trace: from_json takes a trace from an older writer and ignores unknown keys") {
  const auto t = ReasoningTrace::from_json(
      R"({"schema_version":1,"agents":[{"id":3,"answer":"42","later_field":[1,2]}],"added_later":{"x":1}})");
  REQUIRE(t.agents.size() == 1);
  CHECK(t.agents[0].id == 3);
  CHECK(t.agents[0].answer == "42");
  CHECK(t.agents[0].role == "agent");  // the default
  CHECK(t.request.confidence_window == 32);
  CHECK(t.final_agent == -1);
}

TEST_CASE("trace: from_json names the source and the field of what is wrong") {
  auto e = read_error("{\"schema_version\":1,\"agents\":[}");
  CHECK(e.kind() == ErrorKind::format);
  CHECK(e.file() == "saved.json");
  CHECK(e.message().find("malformed JSON at byte") != std::string::npos);

  // Found by fuzzing (tests/fuzz/regressions/trace): a number literal beyond
  // a double's range escaped as the JSON library's own exception.
  e = read_error(R"({"schema_version":1,"agents":[],"usage":{"total_seconds":4)" + std::string(400, '4') + "}}");
  CHECK(e.kind() == ErrorKind::format);
  CHECK(e.file() == "saved.json");
  CHECK(e.message().find("too large for a double") != std::string::npos);

  e = read_error("[1,2]");
  CHECK(e.message() == "expected a trace object, got array");
  e = read_error(R"({"agents":[]})");
  CHECK(e.field() == "schema_version");
  CHECK(e.message() == "missing");
  e = read_error(R"({"schema_version":2,"agents":[]})");
  CHECK(e.field() == "schema_version");
  CHECK(e.message().find("got 2") != std::string::npos);
  e = read_error(R"({"schema_version":1})");
  CHECK(e.field() == "agents");
  e = read_error(R"({"schema_version":1,"agents":[{"id":0},{"id":1,"confidence":{"mean":"high"}}]})");
  CHECK(e.field() == "agents[1].confidence.mean");
  CHECK(e.message() == "expected a number, got string");
  CHECK(std::string(e.what()) == "saved.json: agents[1].confidence.mean: expected a number, got string");
  e = read_error(R"({"schema_version":1,"agents":[{"id":0,"stop_reason":"tired"}]})");
  CHECK(e.kind() == ErrorKind::format);
  CHECK(e.field() == "agents[0].stop_reason");
  CHECK(e.message().find("expected one of eos,") != std::string::npos);
  e = read_error(R"({"schema_version":1,"agents":[{"id":4294967296}]})");
  CHECK(e.field() == "agents[0].id");
  CHECK(e.message().find("out of range") != std::string::npos);
  e = read_error(R"({"schema_version":1,"agents":[{"id":1.5}]})");
  CHECK(e.message() == "expected an integer, got number");
  e = read_error(R"({"schema_version":1,"agents":[],"visual_actions":[{"box":[1,2,3]}]})");
  CHECK(e.field() == "visual_actions[0].box");
  CHECK(e.message() == "expected 4 numbers, got 3");
  e = read_error(R"({"schema_version":1,"agents":[],"request":{"seed":-1}})");
  CHECK(e.field() == "request.seed");
  e = read_error(R"({"schema_version":1,"agents":[7]})");
  CHECK(e.field() == "agents[0]");
  CHECK(e.message() == "expected an object, got number");
}
