// The `musespark` command. Subcommands live one per file (cli/cmd_*.cpp).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "commands.hpp"
#include "musespark/version.hpp"

namespace {

// The tensor backend's OpenMP workers spin after every parallel region and
// take the cores from OpenBLAS's own threads: measured here, prefill was up to
// 7x slower. libgomp reads its wait policy only when it is loaded, so when
// the user has not chosen one, restart once with OMP_WAIT_POLICY=PASSIVE.
void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp(argv);
  CLI::App app{"musespark — local multimodal reasoning"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("musespark ") + MUSESPARK_VERSION_STRING);
  int exit_code = 0;
  musespark::cli::add_tokenize_command(app, exit_code);
  musespark::cli::add_generate_command(app, exit_code);
  musespark::cli::add_bench_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
