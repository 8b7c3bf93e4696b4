// musespark tokenize --model DIR --file F
//
// Prints the token ids of the raw bytes of F as one JSON array on one line:
// no BOS/EOS added, special tokens written in the file recognised. DIR needs
// only tokenizer.json (and optionally tokenizer_config.json); a GGUF file
// gives its tokenizer.ggml.* vocabulary.
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "musespark/error.hpp"
#include "musespark/tokenizer.hpp"

namespace musespark::cli {
namespace {

struct TokenizeArgs {
  std::string model_dir;
  std::string file;
};

void run(const TokenizeArgs& args) {
  Tokenizer tokenizer = Tokenizer::load(args.model_dir);
  std::string text = read_file_bytes(args.file);
  std::vector<int32_t> ids;
  try {
    ids = tokenizer.encode(text);
  } catch (const Error& e) {
    throw Error(e.kind(), args.file, e.field(), e.message());  // name the input file
  }
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_tokenize_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "print the token ids of a file's bytes as a JSON array");
  cmd->add_option("--model", args->model_dir, "model folder holding tokenizer.json, or a .gguf file")->required();
  cmd->add_option("--file", args->file, "file whose raw bytes are encoded")->required();
  cmd->callback([args, &exit_code] { exit_code = run_command([&] { run(*args); }); });
}

}  // namespace musespark::cli
