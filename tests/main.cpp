// doctest's main, plus --shard=K --shards=N: run the K-th of N equal ranges
// of the test cases (in the order chosen, e.g. --order-by=name), so that a
// slow-starting build (the sanitizers') runs the suite in N processes.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  long shard = -1, shards = 0;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--shard=", 8) == 0) {
      shard = std::strtol(argv[i] + 8, nullptr, 10);
    } else if (std::strncmp(argv[i], "--shards=", 9) == 0) {
      shards = std::strtol(argv[i] + 9, nullptr, 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  doctest::Context context(static_cast<int>(rest.size()), rest.data());
  if (shard >= 0 || shards > 0) {
    if (shards < 1 || shard < 0 || shard >= shards) {
      std::cerr << "musespark_tests: --shard=K needs --shards=N with 0 <= K < N\n";
      return 2;
    }
    // Ranges over every registered case (an upper bound of those that pass
    // the filters); the last shard runs to the end, so none is missed.
    const long count = static_cast<long>(doctest::detail::getRegisteredTests().size());
    const long per = (count + shards - 1) / shards;
    context.setOption("first", static_cast<int>(shard * per + 1));
    if (shard + 1 < shards) context.setOption("last", static_cast<int>((shard + 1) * per));
  }
  return context.run();
}
