// The confidence-weighted vote: grouping, order, ties, settling.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "musespark/error.hpp"
#include "reasoning/vote.hpp"

using namespace musespark;
using namespace musespark::detail;

namespace {
Ballot ballot(int32_t agent, std::string normalized, double weight, std::string display = "") {
  if (display.empty()) display = normalized;
  return Ballot{agent, std::move(normalized), std::move(display), weight};
}
}  // namespace

TEST_CASE("vote: weights can overturn a head count") {
  // Three agents say "a" with weight 1; two confident agents say "b" with 2.
  std::vector<Ballot> weighted = {ballot(0, "a", 1), ballot(1, "a", 1), ballot(2, "a", 1), ballot(3, "b", 2),
                                  ballot(4, "b", 2)};
  auto table = tally(weighted);
  REQUIRE(table.size() == 2);
  CHECK(table[0].answer == "b");
  CHECK(table[0].votes == 2);
  CHECK(table[0].weight == doctest::Approx(4.0));
  CHECK(table[0].share == doctest::Approx(4.0 / 7));
  CHECK(table[0].agents == std::vector<int32_t>{3, 4});
  CHECK(table[1].answer == "a");
  CHECK(table[1].share == doctest::Approx(3.0 / 7));
  CHECK(agreement(table) == doctest::Approx(4.0 / 7));

  std::vector<Ballot> unweighted = weighted;
  for (auto& b : unweighted) b.weight = 1;
  auto counted = tally(unweighted);
  REQUIRE(counted.size() == 2);
  CHECK(counted[0].answer == "a");
  CHECK(counted[0].share == doctest::Approx(0.6));
}

TEST_CASE("vote: ties are broken by votes, then by the earliest agent, whatever the ballot order") {
  // Equal weight and votes: agent 2's answer beats agent 5's.
  std::vector<Ballot> ballots = {ballot(5, "x", 1), ballot(2, "y", 1)};
  auto table = tally(ballots);
  REQUIRE(table.size() == 2);
  CHECK(table[0].answer == "y");
  std::reverse(ballots.begin(), ballots.end());
  CHECK(tally(ballots)[0].answer == "y");

  // Equal weight (1 + 1 == 2): more votes first.
  std::vector<Ballot> more = {ballot(0, "q", 2), ballot(1, "p", 1), ballot(2, "p", 1)};
  auto t2 = tally(more);
  REQUIRE(t2.size() == 2);
  CHECK(t2[0].answer == "p");
  CHECK(t2[0].votes == 2);

  // Display is the lowest agent id's spelling; agents ascending.
  std::vector<Ballot> spelled = {ballot(7, "42", 1, "forty-two"), ballot(3, "42", 1, "42.0"),
                                 ballot(5, "42", 1, "42")};
  auto t3 = tally(spelled);
  REQUIRE(t3.size() == 1);
  CHECK(t3[0].display == "42.0");
  CHECK(t3[0].agents == std::vector<int32_t>{3, 5, 7});
  CHECK(t3[0].share == doctest::Approx(1.0));
}

TEST_CASE("vote: abstentions do not count") {
  std::vector<Ballot> ballots = {ballot(0, "", 5), ballot(1, "a", 0), ballot(2, "b", -1), ballot(3, "c", NAN),
                                 ballot(4, "d", INFINITY), ballot(5, "e", 0.5)};
  auto table = tally(ballots);
  REQUIRE(table.size() == 1);
  CHECK(table[0].answer == "e");
  CHECK(table[0].share == doctest::Approx(1.0));
  CHECK(tally(std::vector<Ballot>{ballot(0, "", 1)}).empty());
  CHECK(tally(std::vector<Ballot>{}).empty());
  CHECK(agreement({}) == 0.0);
}

TEST_CASE("vote: agreed once enough votes are in and the leader holds the share") {
  // Leader "a": weight 5 of 7 (share 5/7), 3 of 4 votes.
  std::vector<Ballot> ballots = {ballot(0, "a", 2), ballot(1, "a", 2), ballot(2, "a", 1), ballot(3, "b", 2)};
  auto table = tally(ballots);
  CHECK(vote_agreed(table, 4, 0.7));
  CHECK_FALSE(vote_agreed(table, 4, 0.75));  // 5/7 < 0.75
  CHECK_FALSE(vote_agreed(table, 5, 0.5));   // only 4 votes
  std::vector<Ballot> two = {ballot(0, "x", 1), ballot(1, "x", 3)};
  CHECK(vote_agreed(tally(two), 2, 1.0));
  CHECK_FALSE(vote_agreed({}, 1, 0.5));
  CHECK_THROWS_AS(vote_agreed(table, 0, 0.5), Error);
  CHECK_THROWS_AS(vote_agreed(table, 2, 0), Error);
  CHECK_THROWS_AS(vote_agreed(table, 2, 1.01), Error);
}

TEST_CASE("vote: scattered once enough votes are in and no two agree") {
  std::vector<Ballot> ballots = {ballot(0, "a", 3), ballot(1, "b", 1), ballot(2, "c", 2), ballot(3, "", 4)};
  auto table = tally(ballots);  // the agent without an answer casts no vote
  CHECK(vote_scattered(table, 3));
  CHECK(vote_scattered(table, 2));
  CHECK_FALSE(vote_scattered(table, 4));  // only 3 votes
  ballots.push_back(ballot(4, "b", 1));
  CHECK_FALSE(vote_scattered(tally(ballots), 3));  // "b" twice
  CHECK_FALSE(vote_scattered({}, 2));
  CHECK_THROWS_AS(vote_scattered(table, 1), Error);
}

TEST_CASE("vote: settled only when no unfinished agent can overtake or tie") {
  // Leader 5 (3 votes), runner-up 2 (1 vote).
  std::vector<Ballot> ballots = {ballot(0, "a", 2), ballot(1, "a", 2), ballot(2, "a", 1), ballot(3, "b", 2)};
  auto table = tally(ballots);
  REQUIRE(table[0].weight == doctest::Approx(5.0));
  CHECK(vote_settled(table, 0, 2));
  CHECK(vote_settled(table, 1, 2));        // 5 > 2 + 2 and 3 > 1 + 1
  CHECK_FALSE(vote_settled(table, 2, 2));  // 5 > 2 + 4 fails
  CHECK_FALSE(vote_settled(table, 2, 1));  // weight 5 > 4, but votes 3 > 1 + 2 fails (a tie)
  CHECK_FALSE(vote_settled(table, 1, 3));  // 5 > 2 + 3 fails (a tie)

  // One answer so far: the runner-up is a new answer with nothing yet.
  std::vector<Ballot> lone = {ballot(0, "a", 1), ballot(1, "a", 1), ballot(2, "a", 1)};
  auto t1 = tally(lone);
  CHECK(vote_settled(t1, 2, 1));
  CHECK_FALSE(vote_settled(t1, 3, 1));
  CHECK_FALSE(vote_settled({}, 0, 1));

  // The row with most votes need not be the second by weight.
  std::vector<VoteEntry> crafted(3);
  crafted[0].weight = 10, crafted[0].votes = 4;
  crafted[1].weight = 5, crafted[1].votes = 1;
  crafted[2].weight = 4, crafted[2].votes = 3;
  CHECK_FALSE(vote_settled(crafted, 1, 1));  // 4 > 3 + 1 fails
  CHECK(vote_settled(crafted, 0, 1));

  CHECK_THROWS_AS(vote_settled(table, -1, 1), Error);
  CHECK_THROWS_AS(vote_settled(table, 1, -1), Error);
}
