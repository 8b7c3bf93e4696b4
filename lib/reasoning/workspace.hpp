// Contemplating's workspace: the short text distilled from round 1 that the
// refine round's agents read in their prompt (Parallel-Distill-Refine style).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "musespark/request.hpp"
#include "musespark/trace.hpp"

namespace musespark::detail {

// The workspace for `agents` (round 1) and their vote table `votes` (as
// tally() sorts it). Plain English text:
//
//   Earlier attempts reached these answers:
//   1. 42 (75% of the vote, 3 agents)
//      Reasoning: "...so the product is 6 * 7 = 42."
//   2. 41 (25% of the vote, 1 agent)
//      Reasoning: "..."
//   (1 more answer with 5% of the vote not shown.)
//
// At most 4 answers, in vote order: each as displayed (white space collapsed,
// at most `excerpt_chars` bytes), its vote share in whole percent, its number
// of agents, and the last `excerpt_chars` bytes of the thinking of its
// strongest agent (highest vote_weight among its voters, then lowest id; its
// answer_text when the thinking is empty), white space collapsed, starting at
// a word boundary (or a character boundary in text without spaces), marked
// with a leading "..." when cut. The excerpt line is left out when that agent
// has no text or is not in `agents`.
//
// Never longer than `max_chars` bytes and never cuts a UTF-8 character:
// whole entries are dropped from the end first (the "not shown" line counts
// them when it fits); if not even the first entry fits, its excerpt is
// shortened or left out; if the header and the first answer's line still do
// not fit, the result is "". With an empty table, the one line
// "No earlier attempt reached an answer." (cut at a character if need be).
//
// `markers` are texts that must not reach the next prompt as text (the
// model's image placeholder and vision start/end markers, which an agent may
// write like any other token): every occurrence is removed from answers and
// excerpts before anything is measured or cut.
//
// Returns a new string. Deterministic; pure; thread-safe; no errors.
std::string distill_workspace(std::span<const AgentTrace> agents, const std::vector<VoteEntry>& votes,
                              size_t max_chars = 1200, size_t excerpt_chars = 240,
                              std::span<const std::string> markers = {});

// The user text of a refine round: the workspace, the instruction to reason
// again ("\nCheck these attempts, reason again on your own, and give your
// final answer.\n\n"), then the question. The question comes last, where it
// stands in every other prompt: a small model finds its numbers by where they
// are, and behind a workspace full of other numbers it misread them (the
// default model's refine agents, with the workspace after the question, got
// 26 of 160 validation tasks right against 44 for its first round). The
// default model is trained on exactly this text (lib/distill/curriculum.cpp).
// Pure; thread-safe.
std::string with_workspace(const std::string& question, const std::string& workspace);

// The conversation of a refine (or aggregator) round: `messages` with the
// last user message's last text part made with_workspace(text, workspace),
// so that its images stay before the workspace and the question stays last,
// as the default model was trained; a last user message without text gets
// the workspace as a text part after its images. Other messages are kept as
// they are (images shared, not copied).
// Throws Error(invalid_argument, field "messages") when there is no user
// message. Pure; thread-safe.
std::vector<Message> with_workspace(std::vector<Message> messages, const std::string& workspace);

}  // namespace musespark::detail
