#include "reasoning/vote.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "musespark/error.hpp"

namespace musespark::detail {

std::vector<VoteEntry> tally(std::span<const Ballot> ballots) {
  std::vector<const Ballot*> valid;
  for (const auto& b : ballots)
    if (!b.normalized.empty() && std::isfinite(b.weight) && b.weight > 0) valid.push_back(&b);
  std::stable_sort(valid.begin(), valid.end(), [](const Ballot* a, const Ballot* b) { return a->agent < b->agent; });

  std::vector<VoteEntry> table;
  std::map<std::string, size_t, std::less<>> row_of;
  double total = 0;
  for (const Ballot* b : valid) {
    auto [it, inserted] = row_of.try_emplace(b->normalized, table.size());
    if (inserted) {
      VoteEntry entry;
      entry.answer = b->normalized;
      entry.display = b->display;
      table.push_back(std::move(entry));
    }
    VoteEntry& row = table[it->second];
    row.votes += 1;
    row.weight += b->weight;
    row.agents.push_back(b->agent);
    total += b->weight;
  }
  for (auto& row : table) row.share = row.weight / total;
  // Rows were created in order of their smallest agent id, so a stable sort
  // on (weight, votes) leaves that as the final tie-break.
  std::stable_sort(table.begin(), table.end(), [](const VoteEntry& a, const VoteEntry& b) {
    if (a.weight != b.weight) return a.weight > b.weight;
    return a.votes > b.votes;
  });
  return table;
}

std::vector<VoteEntry> tally_agents(std::span<const AgentTrace> agents) {
  std::vector<Ballot> ballots;
  for (const AgentTrace& a : agents)
    if (!a.normalized_answer.empty()) ballots.push_back({a.id, a.normalized_answer, a.answer, a.vote_weight});
  return tally(ballots);
}

bool vote_settled(const std::vector<VoteEntry>& table, int32_t unfinished_agents, double max_weight_per_agent) {
  if (unfinished_agents < 0)
    throw Error(ErrorKind::invalid_argument, "", "unfinished_agents",
                "must not be negative, got " + std::to_string(unfinished_agents));
  if (!(max_weight_per_agent >= 0))
    throw Error(ErrorKind::invalid_argument, "", "max_weight_per_agent",
                "must not be negative, got " + std::to_string(max_weight_per_agent));
  if (table.empty()) return false;
  const VoteEntry& leader = table[0];
  const double runner_weight = table.size() > 1 ? table[1].weight : 0.0;
  // The row with the most votes need not be the second by weight.
  int64_t runner_votes = 0;
  for (size_t i = 1; i < table.size(); ++i) runner_votes = std::max<int64_t>(runner_votes, table[i].votes);
  const bool by_weight = leader.weight > runner_weight + unfinished_agents * max_weight_per_agent;
  const bool by_count = leader.votes > runner_votes + unfinished_agents;
  return by_weight && by_count;
}

bool vote_agreed(const std::vector<VoteEntry>& table, int32_t min_votes, double min_share) {
  if (min_votes < 1)
    throw Error(ErrorKind::invalid_argument, "", "min_votes", "must be at least 1, got " + std::to_string(min_votes));
  if (!(min_share > 0 && min_share <= 1))
    throw Error(ErrorKind::invalid_argument, "", "min_share", "must be in (0, 1], got " + std::to_string(min_share));
  if (table.empty()) return false;
  int64_t votes = 0;
  for (const auto& row : table) votes += row.votes;
  return votes >= min_votes && agreement(table) >= min_share;
}

bool vote_scattered(const std::vector<VoteEntry>& table, int32_t min_votes) {
  if (min_votes < 2)
    throw Error(ErrorKind::invalid_argument, "", "min_votes", "must be at least 2, got " + std::to_string(min_votes));
  int64_t votes = 0;
  for (const auto& row : table) {
    if (row.votes > 1) return false;
    votes += row.votes;
  }
  return votes >= min_votes;
}

double agreement(const std::vector<VoteEntry>& table) noexcept { return table.empty() ? 0.0 : table[0].share; }

}  // namespace musespark::detail
