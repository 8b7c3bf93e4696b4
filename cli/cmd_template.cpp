// musespark template (--model DIR|FILE.gguf | --template FILE.jinja)
//                    --messages FILE.json [--tools FILE.json] [--kwargs FILE.json]
//                    [--no-generation-prompt]
//
// Prints exactly the prompt the model's chat template renders for the
// conversation (nothing added, no newline at the end), as transformers'
// apply_chat_template(messages, tools=..., add_generation_prompt=...,
// **kwargs, tokenize=False) does. bos_token / eos_token and the other
// special tokens come from the model (tokenizer_config.json, or the GGUF's
// tokenizer.ggml.* keys); with --template, only from --kwargs.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "musespark/chat.hpp"
#include "musespark/error.hpp"

namespace musespark::cli {
namespace {

struct TemplateArgs {
  std::string model, template_file, messages, tools, kwargs;
  bool no_generation_prompt = false;
};

void run(const TemplateArgs& a) {
  if (a.model.empty() == a.template_file.empty())
    throw Error(ErrorKind::invalid_argument, "", "--model", "give one of --model and --template");
  ChatTemplate chat = a.model.empty() ? ChatTemplate::from_jinja(read_file_bytes(a.template_file), a.template_file)
                                      : ChatTemplate::load(a.model);
  ChatRenderOptions options;
  options.add_generation_prompt = !a.no_generation_prompt;
  if (!a.tools.empty()) options.tools_json = read_file_bytes(a.tools);
  if (!a.kwargs.empty()) options.kwargs_json = read_file_bytes(a.kwargs);
  std::string prompt;
  try {
    prompt = chat.render_json(read_file_bytes(a.messages), options);
  } catch (const Error& e) {
    // A JSON argument's error names its file.
    const std::string& f = e.field();
    const std::string* file = f.starts_with("messages") ? &a.messages
                              : f.starts_with("tools")  ? &a.tools
                              : f.starts_with("kwargs") ? &a.kwargs
                                                        : nullptr;
    if (e.file().empty() && file && !file->empty()) throw Error(e.kind(), *file, e.field(), e.message());
    throw;
  }
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_template_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand("template", "print the prompt a chat template renders for a conversation");
  cmd->add_option("--model", args->model, "model folder or .gguf file whose chat template is used");
  cmd->add_option("--template", args->template_file, "a Jinja chat template file instead of a model's");
  cmd->add_option("--messages", args->messages, "JSON file: the messages (role, content, tool_calls, ...)")->required();
  cmd->add_option("--tools", args->tools, "JSON file: a list of tool definitions");
  cmd->add_option("--kwargs", args->kwargs, "JSON file: an object of more template variables (enable_thinking, ...)");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt, "end after the last message (no assistant header)");
  cmd->callback([args, &exit_code] { exit_code = run_command([&] { run(*args); }); });
}

}  // namespace musespark::cli
