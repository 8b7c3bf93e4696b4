// Helpers shared by the subcommands.
#pragma once

#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

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

// The bytes of `file`. Error{io} naming it when it cannot be read.
inline std::string read_file_bytes(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::io, file, "", "cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(ErrorKind::io, file, "", "read failed");
  return text.str();
}

}  // namespace musespark::cli
