// Helpers shared by the subcommands.
#pragma once

#include <cstdio>
#include <exception>
#include <functional>

#include "musespark/error.hpp"

namespace musespark::cli {

// Runs a command body: any error is printed as "error: <what>" on stderr and
// turns into exit code 1; nothing escapes as a crash.
inline int run_command(const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace musespark::cli
