// musespark — the reasoning trace: everything a person needs to see why an
// answer came out as it did, as one object and one JSON document.
//
// A trace is a plain value (copyable, no hidden state). The JSON schema is
// documented in docs/trace.md; `schema_version` changes whenever a field's
// meaning changes, and fields are only ever added within a version.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace musespark {

enum class Mode { instant, thinking, contemplating, automatic };
enum class Effort { minimal, low, medium, high, xhigh };

// Names as used in JSON and on the command line: "instant", "thinking",
// "contemplating", "auto"; "minimal" ... "xhigh". The parse functions throw
// Error{invalid_argument} naming `field` for unknown names.
const char* mode_name(Mode mode);
const char* effort_name(Effort effort);
Mode parse_mode(const std::string& name, const std::string& field = "mode");
Effort parse_effort(const std::string& name, const std::string& field = "effort");

// Why an agent stopped.
enum class AgentStop {
  eos,             // it finished its answer (end-of-sequence or a stop token)
  budget,          // it ran out of answer tokens, or the request's total token cap was reached
  low_confidence,  // its sliding-window confidence fell below the warm-up threshold
  consensus,       // the vote was settled: nothing it could answer would change it
  deadline,        // the request's deadline passed
  cancelled,       // the event callback asked to stop
};
const char* agent_stop_name(AgentStop stop);

// DeepConf-style confidence of one agent's tokens (higher is more confident).
// Token confidence C_t = -mean(log p) over the top-k candidates at step t;
// group confidence = mean of C_t over a sliding window of `window` tokens.
struct ConfidenceSummary {
  double mean = 0;          // mean C_t over all sampled tokens
  double lowest_group = 0;  // the lowest group confidence of any window
  double bottom10 = 0;      // mean of the lowest 10% of group confidences
  double tail = 0;          // mean C_t over the last `tail` tokens
  int64_t tokens = 0;       // sampled tokens that went into it (forced tokens do not)
};

// A step of reasoning: a paragraph of the thinking (split at blank lines).
struct ReasoningStep {
  int32_t index = 0;
  std::string text;
  int64_t first_token = 0;  // token offsets within the agent's generated tokens
  int64_t end_token = 0;
};

struct AgentTrace {
  int32_t id = 0;              // unique within the trace
  int32_t round = 1;           // 1, or 2 for a Contemplating refine round
  std::string role = "agent";  // "agent", "instant" or "aggregator"
  uint64_t seed = 0;
  std::string thinking;        // text between <think> and </think>
  std::vector<ReasoningStep> steps;
  std::string answer_text;     // everything after </think>
  std::string answer;          // what the extractor took from answer_text ("" if nothing)
  std::string normalized_answer;
  int64_t thinking_tokens = 0;
  int64_t answer_tokens = 0;
  int64_t forced_tokens = 0;   // tokens the engine injected (closing a thought at its budget)
  bool budget_closed = false;  // the engine closed its thinking at the budget
  ConfidenceSummary confidence;
  std::vector<float> token_confidence;  // per sampled token, when the request asks for it
  AgentStop stop_reason = AgentStop::eos;
  double vote_weight = 0;      // its weight in the vote (0 when it did not vote)
};

// One row of the vote table: a distinct normalised answer.
struct VoteEntry {
  std::string answer;             // normalised
  std::string display;            // as the first agent wrote it
  int32_t votes = 0;
  double weight = 0;              // sum of its agents' vote weights
  double share = 0;               // weight / total weight
  std::vector<int32_t> agents;    // agent ids
};

struct Escalation {
  Mode from = Mode::instant;
  Mode to = Mode::thinking;
  std::string reason;             // "low_confidence" or "disagreement"
  double value = 0;               // the measured confidence or agreement
  double threshold = 0;
};

// Visual chain-of-thought: where an agent looked. The model writes
// <box>(x1,y1),(x2,y2)</box> to point at a region and <zoom>(...)</zoom> to
// look closer, in 0-1000 coordinates relative to the image.
struct VisualAction {
  int32_t agent = 0;
  std::string kind;                       // "box" or "zoom"
  int32_t image = 0;                      // index of the request's image it refers to
  std::array<double, 4> relative{};       // x1, y1, x2, y2 as written (0-1000)
  std::array<int32_t, 4> box{};           // x0, y0, x1, y1 in the original image's pixels (x1, y1 exclusive)
  int64_t token = 0;                      // the agent's generated tokens when it was written
  bool applied = false;                   // zoom: the crop was encoded and appended to the agent's context
  int32_t crop_width = 0, crop_height = 0;  // zoom: the crop's size in pixels
};

struct Usage {
  int64_t prompt_tokens = 0;      // prefilled tokens (each distinct prompt once)
  int64_t generated_tokens = 0;   // all agents, forced tokens included
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double total_seconds = 0;
  double tokens_per_second = 0;   // generated_tokens / decode_seconds
};

// What was asked, as resolved (effort mapped to numbers).
struct RequestRecord {
  Mode mode = Mode::automatic;
  Effort effort = Effort::medium;
  int32_t agents = 0;
  int32_t refine_agents = 0;      // Contemplating's round 2
  int32_t rounds = 1;
  int32_t max_thinking_tokens = 0;
  int32_t max_answer_tokens = 0;
  int64_t max_total_tokens = 0;   // 0: no cap
  int64_t deadline_ms = 0;        // 0: none
  uint64_t seed = 0;
  float temperature = 0;
  float top_p = 1;
  bool early_stop = true;
  bool consensus_stop = true;
  bool warmup_first = true;       // early stop's warm-up agents ran before the others
  int32_t confidence_window = 32; // tokens per group (and in the tail)
  double keep_fraction = 0.9;     // early-stop threshold: percentile 100*(1-keep) of warm-up agents
  double consensus_share = 0;     // consensus stop once the warm-ups agree this much (0: off)
  int32_t scatter_stop = 0;       // consensus stop once this many voted and no two agreed (0: off)
  std::string question;           // the last user message's text
};

struct ReasoningTrace {
  static constexpr int kSchemaVersion = 1;

  RequestRecord request;
  Mode mode_used = Mode::instant;       // the last mode that ran (Auto escalates)
  std::vector<AgentTrace> agents;
  std::vector<VoteEntry> votes;         // the final vote, most weight first
  std::vector<Escalation> escalations;
  std::vector<VisualAction> visual_actions;  // every box and zoom, in the order written
  std::optional<double> early_stop_threshold;  // from the warm-up agents, when set
  std::string workspace;                // Contemplating: what round 2 saw
  std::string final_answer;             // normalised winner ("" when no agent answered)
  std::string final_text;               // the winning agent's answer text, as written
  int32_t final_agent = -1;             // whose answer_text is final_text
  Usage usage;

  // The JSON document of docs/trace.md. `indent` < 0: one line.
  // Deterministic: equal traces give equal strings.
  std::string to_json(int indent = -1) const;

  // Reads a document of docs/trace.md (what to_json writes and the viewer
  // opens): schema_version 1 and `agents` are required; other keys may be
  // absent (a trace from an older 1.x writer) and take the defaults above;
  // keys it does not know are ignored; `null` numbers read as NaN.
  // from_json(t.to_json()).to_json() == t.to_json() for every trace t.
  // Throws Error{format} naming `source` (used as the file) and the field
  // ("agents[2].confidence.mean") when the text is not JSON, a field has the
  // wrong type, an enum name is unknown or schema_version is not 1.
  static ReasoningTrace from_json(std::string_view json, const std::string& source = "trace");
};

}  // namespace musespark
