// musespark serve — what one run of the engine becomes in a Chat Completions
// response: the assistant message (reasoning_content and content), its finish
// reason and its usage. Streamed or not, the text is the same: a streamed
// message is the concatenation of its deltas.
//
// How the text is chosen (docs/server.md):
//  - mode "instant": one agent, whose answer is final as it is written. Its
//    thinking (if any) streams as reasoning_content and its answer as
//    content, token by token.
//  - the other modes: the answer is chosen by a vote once the agents have
//    finished, so content (the winning agent's answer text) comes in one
//    piece at the end, and reasoning_content is a readable log of the run
//    as it happens: each agent's thinking paragraph by paragraph
//    ("agent 2: ..."), how each agent ended and what it answered,
//    escalations, and the vote.
// `stop` strings cut the content before the first one found (in Instant the
// run stops there; in the other modes the winner's text is cut).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "musespark/engine.hpp"

namespace musespark::serve {

// Content on its way out: holds back what might still become a stop string,
// and trailing whitespace; drops leading whitespace (whitespace around an
// answer is layout: the trace's answer_text has none at its end either).
class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // The text that can be sent now.
  std::string push(std::string_view text);
  // At the end: what was held back, less trailing whitespace.
  std::string flush();
  bool stopped() const noexcept { return stopped_; }

 private:
  std::string start(std::string out);
  std::vector<std::string> stop_;
  std::string pending_;
  bool started_ = false;  // some content has been sent
  bool stopped_ = false;
};

struct Delta {
  std::string reasoning;  // reasoning_content
  std::string content;
  bool empty() const noexcept { return reasoning.empty() && content.empty(); }
};

class ReplyBuilder {
 public:
  ReplyBuilder(Mode mode, std::vector<std::string> stop);

  // Takes one engine event; what it adds to the message goes into `out`.
  // Returns false when the run should stop (the content reached a stop string).
  bool on_event(const Event& event, Delta& out);

  // The message so far.
  const std::string& reasoning() const noexcept { return reasoning_; }
  const std::string& content() const noexcept { return content_; }

  // After the run: "length" when the content's agent ended at a token budget
  // or the deadline (or, with no answer, any agent did), else "stop".
  std::string finish_reason(const ReasoningTrace& trace) const;
  // Tokens of the content: the answer tokens of the agent it came from.
  int64_t content_tokens(const ReasoningTrace& trace) const;

 private:
  void log(Delta& out, const std::string& entry);
  void add_content(Delta& out, const std::string& text);
  const AgentTrace* content_agent(const ReasoningTrace& trace) const;

  bool live_;  // Instant: one agent, streamed as it writes
  StopFilter filter_;
  std::string reasoning_, content_;
  std::map<int32_t, std::string> paragraphs_;  // per agent: thinking not yet logged
};

// One choice of a response, once its run is over.
struct ChoiceOutcome {
  std::string reasoning, content, finish_reason;
  int64_t content_tokens = 0;
  ReasoningTrace trace;
};

// What every object of one response shares.
struct ResponseInfo {
  std::string id;       // "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// The chat.completion object (one line of JSON). With `with_trace`, each
// choice carries "musespark_trace": the reasoning trace (docs/trace.md).
std::string completion_json(const ResponseInfo& info, const std::vector<ChoiceOutcome>& choices, bool with_trace);

// chat.completion.chunk objects. With `usage_field`, the chunk has
// "usage": null (stream_options.include_usage: only the last chunk has usage).
std::string role_chunk_json(const ResponseInfo& info, int32_t index, bool usage_field);
std::string delta_chunk_json(const ResponseInfo& info, int32_t index, const Delta& delta, bool usage_field);
// The last chunk of a choice: an empty delta and the finish reason; the
// trace too when it is given.
std::string finish_chunk_json(const ResponseInfo& info, int32_t index, const std::string& finish_reason,
                              const ReasoningTrace* trace, bool usage_field);
// The chunk after every choice: no choices, the usage of them all.
std::string usage_chunk_json(const ResponseInfo& info, const std::vector<ChoiceOutcome>& choices);

}  // namespace musespark::serve
