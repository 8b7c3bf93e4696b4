// musespark generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--chat] ...
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "model_args.hpp"
#include "musespark/chat.hpp"
#include "musespark/generate.hpp"

namespace musespark::cli {
namespace {

struct GenerateArgs {
  ModelArgs model;
  std::string prompt;
  std::string prompt_ids;
  std::string system;
  bool chat = false;
  bool no_think = false;
  int32_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX)
      throw Error(ErrorKind::invalid_argument, "", "--prompt-ids", "'" + item + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw Error(ErrorKind::invalid_argument, "", "--prompt-ids", "no token ids given");
  return ids;
}

void add_unique(std::vector<int32_t>& ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

void run(const GenerateArgs& a) {
  const std::filesystem::path dir = a.model.model_dir;
  auto model = Model::load(dir, a.model.options());  // first: its errors name what is wrong with the model
  std::optional<Tokenizer> tokenizer;
  // A GGUF file carries its tokenizer; a folder may lack one (--prompt-ids only).
  if (std::filesystem::is_regular_file(dir) || std::filesystem::exists(dir / "tokenizer.json"))
    tokenizer = Tokenizer::load(dir);
  if (!a.prompt.empty() && !tokenizer)
    throw Error(ErrorKind::io, (dir / "tokenizer.json").string(), "", "missing: --prompt needs a tokenizer (or use --prompt-ids)");

  std::vector<int32_t> prompt;
  std::vector<std::string> stop_token_names;
  if (!a.prompt_ids.empty()) {
    if (a.chat) throw Error(ErrorKind::invalid_argument, "", "--chat", "applies to --prompt, not --prompt-ids");
    prompt = parse_ids(a.prompt_ids);
  } else if (a.chat) {
    ChatTemplate tmpl = ChatTemplate::load(dir);
    std::vector<ChatMessage> messages;
    if (!a.system.empty()) messages.push_back({"system", a.system});
    messages.push_back({"user", a.prompt});
    prompt = tokenizer->encode(tmpl.render(messages, true, !a.no_think));
    stop_token_names = tmpl.stop_tokens();
  } else {
    prompt = tokenizer->encode(a.prompt);
    if (auto bos = tokenizer->bos_id()) prompt.insert(prompt.begin(), *bos);
  }

  Runtime runtime(model);

  GenerateOptions options;
  options.max_tokens = a.max_tokens;
  options.sampling = a.sampling;
  options.stop_strings = a.stop;
  if (!a.ignore_eos) {
    for (int32_t id : model->info().eos_token_ids) add_unique(options.stop_token_ids, id);
    if (tokenizer) {
      if (auto eos = tokenizer->eos_id()) add_unique(options.stop_token_ids, *eos);
      for (const auto& name : stop_token_names)
        if (auto id = tokenizer->token_id(name)) add_unique(options.stop_token_ids, *id);
    }
  }
  if (!a.json) {
    options.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
  }

  GenerateResult r = generate(runtime, tokenizer ? &*tokenizer : nullptr, prompt, options);
  const double prefill_tps = r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0;
  const double decode_tps = r.decode_seconds > 0 ? r.tokens.size() / r.decode_seconds : 0;

  if (a.json) {
    nlohmann::json out;
    out["tokens"] = r.tokens;
    out["text"] = r.text;
    out["stop_reason"] = stop_reason_name(r.stop_reason);
    out["prompt_tokens"] = r.prompt_tokens;
    std::vector<float> logprobs;
    for (const auto& t : r.details) logprobs.push_back(t.logprob);
    out["logprobs"] = logprobs;
    if (a.sampling.top_logprobs > 0) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& t : r.details) {
        nlohmann::json alts = nlohmann::json::array();
        for (const auto& alt : t.top) alts.push_back({{"id", alt.id}, {"logprob", alt.logprob}});
        top.push_back(std::move(alts));
      }
      out["top_logprobs"] = std::move(top);
    }
    out["usage"] = {{"prompt_tokens", r.prompt_tokens},
                    {"generated_tokens", r.tokens.size()},
                    {"prefill_seconds", r.prefill_seconds},
                    {"decode_seconds", r.decode_seconds},
                    {"prefill_tokens_per_second", prefill_tps},
                    {"decode_tokens_per_second", decode_tps}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "[%lld prompt tokens, %zu generated; prefill %.1f tok/s, decode %.1f tok/s; stop: %s]\n",
                 static_cast<long long>(r.prompt_tokens), r.tokens.size(), prefill_tps, decode_tps,
                 stop_reason_name(r.stop_reason));
  }
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "generate text from a prompt");
  args->model.add_to(*cmd);
  auto* prompt = cmd->add_option("--prompt", args->prompt, "prompt text");
  auto* ids = cmd->add_option("--prompt-ids", args->prompt_ids, "prompt as comma-separated token ids");
  prompt->excludes(ids);
  cmd->add_flag("--chat", args->chat, "wrap the prompt in the model's chat template (as one user turn)");
  cmd->add_option("--system", args->system, "system message (with --chat)");
  cmd->add_flag("--no-think", args->no_think, "with --chat on a thinking model: thinking off (enable_thinking=false)");
  cmd->add_option("--max-tokens", args->max_tokens, "tokens to generate at most")->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", args->sampling.temperature, "0: greedy");
  cmd->add_option("--top-k", args->sampling.top_k);
  cmd->add_option("--top-p", args->sampling.top_p);
  cmd->add_option("--min-p", args->sampling.min_p);
  cmd->add_option("--repetition-penalty", args->sampling.repetition_penalty);
  cmd->add_option("--seed", args->sampling.seed);
  cmd->add_option("--top-logprobs", args->sampling.top_logprobs, "report K alternatives per token (with --json)");
  cmd->add_option("--stop", args->stop, "stop when the text contains this (repeatable)");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "do not stop at end-of-sequence tokens");
  cmd->add_flag("--json", args->json, "print one JSON object: tokens, text, logprobs, usage");
  cmd->callback([args, &exit_code] {
    exit_code = run_command([&] {
      if (args->prompt.empty() && args->prompt_ids.empty())
        throw Error(ErrorKind::invalid_argument, "", "--prompt", "give --prompt TEXT or --prompt-ids 1,2,3");
      run(*args);
    });
  });
}

}  // namespace musespark::cli
