// musespark — the engine: a model, its tokenizer and chat template, and the
// reasoning modes on top.
//
//   auto engine = musespark::Engine::load("models/musespark-tiny");
//   auto result = engine.ask(musespark::Request::question("What is 17*23?", musespark::Mode::thinking));
//   std::cout << result.answer << "\n" << result.trace.to_json(2);
//
// Thread safety: an Engine is immutable after load; ask() may be called from
// several threads at once (each call has its own KV caches and samplers; the
// tensor backend's threads are shared).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "musespark/chat.hpp"
#include "musespark/model.hpp"
#include "musespark/request.hpp"
#include "musespark/tokenizer.hpp"
#include "musespark/trace.hpp"

namespace musespark {

struct EngineOptions {
  ModelOptions model;
};

// What an effort level means, before the request's own budgets override it.
struct EffortBudgets {
  int32_t agents;              // Thinking
  int32_t max_thinking_tokens; // Thinking, per agent
  int32_t contemplate_agents;  // Contemplating round 1
  int32_t refine_agents;       // Contemplating round 2
  int32_t contemplate_thinking_tokens;  // per agent and round: two rounds cost about one Thinking round
  int32_t max_answer_tokens;
};
EffortBudgets effort_budgets(Effort effort);

// Streaming: the facts of the trace as they happen. Pointers are valid only
// during the callback.
enum class EventKind {
  agent_started,   // agent, round
  text_delta,      // agent, text, in_thinking
  step,            // agent, text (a finished paragraph of thinking)
  agent_finished,  // agent, agent_trace
  vote_update,     // votes
  escalation,      // escalation
  final_answer,    // trace
};
const char* event_kind_name(EventKind kind);

struct Event {
  EventKind kind;
  int32_t agent = -1;
  int32_t round = 0;
  std::string_view text{};
  bool in_thinking = false;
  int64_t tokens = 0;                  // the agent's generated tokens so far
  double confidence = 0;               // the agent's current group confidence
  const AgentTrace* agent_trace = nullptr;
  const std::vector<VoteEntry>* votes = nullptr;
  const Escalation* escalation = nullptr;
  const ReasoningTrace* trace = nullptr;
};
// Return false to cancel: agents stop (reason "cancelled") and ask() returns
// what it has.
using EventCallback = std::function<bool(const Event&)>;

struct Result {
  std::string answer;      // the final answer as the winning agent wrote it ("" if none)
  std::string text;        // the winning agent's whole answer text
  ReasoningTrace trace;
};

class Engine {
 public:
  // Loads the model folder (see model.hpp), its tokenizer and chat template.
  // Throws musespark::Error naming the file and field.
  static Engine load(const std::filesystem::path& directory, const EngineOptions& options = {});

  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  // Answers a request. Errors: Error{invalid_argument} for a bad request
  // (no messages, unknown role, out-of-range budgets, naming the field);
  // Error{context_overflow} when the prompt does not fit.
  Result ask(const Request& request, const EventCallback& on_event = {}) const;

  // Throws what ask() would throw before its first event (the errors above),
  // without running anything: for callers that must answer an error before
  // they commit to a response, such as a server about to start a stream.
  void check(const Request& request) const;

  const ModelInfo& model_info() const noexcept;
  const Tokenizer& tokenizer() const noexcept;
  const ChatTemplate& chat_template() const noexcept;
  // The loaded model, shared (e.g. to run generate() on a Runtime of one's own).
  std::shared_ptr<const Model> model() const noexcept;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace musespark
