// The confidence-weighted majority vote over agents' normalised answers, and
// the tests the scheduler asks of it (is it settled? how much agreement?).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "musespark/trace.hpp"

namespace musespark::detail {

// One agent's vote.
struct Ballot {
  int32_t agent = 0;       // agent id (unique among the ballots)
  std::string normalized;  // normalize_answer(answer); "" abstains
  std::string display;     // the answer as the agent wrote it
  double weight = 0;       // its vote weight (e.g. a confidence); <= 0 or NaN abstains
};

// Groups the ballots by normalised answer and sums their weights. Ballots
// with an empty normalised answer, or a weight that is not a positive finite
// number, do not vote. Rows are sorted by weight (descending), ties broken by
// more votes, then by the smallest agent id. Each row's agents are in
// ascending id order, its display is that of its smallest agent id, and
// weights are summed in id order, so the result depends only on the set of
// ballots, not their order. share = weight / total weight of all votes.
// Empty when nobody voted. Pure; thread-safe; no errors.
std::vector<VoteEntry> tally(std::span<const Ballot> ballots);

// tally() of every agent with a normalised answer, each with its id, answer
// and vote_weight. Pure; thread-safe; no errors.
std::vector<VoteEntry> tally_agents(std::span<const AgentTrace> agents);

// True when the leader of `table` (as sorted by tally) can no longer be
// overtaken or tied, even if all `unfinished_agents` voted for the runner-up
// with `max_weight_per_agent` each:
//   leader.weight > runner_up.weight + unfinished * max_weight_per_agent  and
//   leader.votes  > runner_up.votes  + unfinished
// where runner_up.weight is the second row's weight and runner_up.votes the
// most votes of any other row (with a single row: an answer nobody gave yet,
// 0 and 0). Strict, so a tie is never called settled.
// False for an empty table. Error{invalid_argument} for negative
// unfinished_agents or a negative/NaN max_weight_per_agent. Pure; thread-safe.
bool vote_settled(const std::vector<VoteEntry>& table, int32_t unfinished_agents, double max_weight_per_agent);

// True when at least `min_votes` ballots are in `table` and its leader holds
// at least `min_share` of their weight: the agents so far agree enough that
// more of them would not be worth their tokens (DeepConf's adaptive
// sampling). False for an empty table. Error{invalid_argument} for
// min_votes < 1 or min_share outside (0, 1]. Pure; thread-safe.
bool vote_agreed(const std::vector<VoteEntry>& table, int32_t min_votes, double min_share);

// True when at least `min_votes` ballots are in `table` and no answer has
// more than one: the agents so far disagree entirely, and a few more seldom
// form a majority. Error{invalid_argument} for min_votes < 2. Pure;
// thread-safe.
bool vote_scattered(const std::vector<VoteEntry>& table, int32_t min_votes);

// The leader's share of the weight (0..1; 0 for an empty table): how much the
// agents agree. Auto escalates to Contemplating when it is low.
double agreement(const std::vector<VoteEntry>& table) noexcept;

}  // namespace musespark::detail
