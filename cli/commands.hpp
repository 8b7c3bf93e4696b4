// The `musespark` command: one file per subcommand, each registering itself here.
#pragma once

#include <CLI/CLI.hpp>

namespace musespark::cli {

// Each adds its subcommand to `app`; the callback runs the command and sets
// the process exit code through the return value stored by main.
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_template_command(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_ask_command(CLI::App& app, int& exit_code);
void add_distill_command(CLI::App& app, int& exit_code);
void add_eval_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace musespark::cli
