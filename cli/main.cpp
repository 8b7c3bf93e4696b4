// The `musespark` command. Subcommands live one per file (cli/cmd_*.cpp).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "commands.hpp"
#include "openmp_env.hpp"
#include "musespark/version.hpp"

int main(int argc, char** argv) {
  musespark::cli::prefer_short_openmp_spin(argv);
  CLI::App app{"musespark — local multimodal reasoning"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("musespark ") + MUSESPARK_VERSION_STRING);
  int exit_code = 0;
  musespark::cli::add_tokenize_command(app, exit_code);
  musespark::cli::add_template_command(app, exit_code);
  musespark::cli::add_generate_command(app, exit_code);
  musespark::cli::add_ask_command(app, exit_code);
  musespark::cli::add_bench_command(app, exit_code);
  musespark::cli::add_distill_command(app, exit_code);
  musespark::cli::add_eval_command(app, exit_code);
  musespark::cli::add_serve_command(app, exit_code);
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
