// musespark from Node.js: ask a question about an image in Thinking mode and
// print the answer and the vote.
//
//   usage: node ask.mjs MODEL_DIR IMAGE_PATH [QUESTION]
//
// Calls the stable C ABI (include/musespark/musespark.h) through the koffi
// FFI package. The library is found in MUSESPARK_LIB_DIR (the folder holding
// libmusespark.so, e.g. build/lib), else by the system's library search path.
import path from 'node:path';
import process from 'node:process';
import koffi from 'koffi';

const DEFAULT_QUESTION = 'What colour is the square in this picture?';
const MODE_THINKING = 1;
const STATUS_OK = 0;

function loadLibrary() {
  const dir = process.env.MUSESPARK_LIB_DIR;
  const file = dir ? path.join(dir, 'libmusespark.so') : 'libmusespark.so';
  try {
    return koffi.load(file);
  } catch (e) {
    throw new Error(`cannot load ${file} (${e.message}); set MUSESPARK_LIB_DIR to the folder holding it`);
  }
}

const args = process.argv.slice(2);
if (args.length < 2 || args.length > 3) {
  console.error('usage: node ask.mjs MODEL_DIR IMAGE_PATH [QUESTION]');
  process.exit(2);
}
const [modelDir, imagePath, question = DEFAULT_QUESTION] = args;

let lib;
try {
  lib = loadLibrary();
} catch (e) {
  console.error(`error: ${e.message}`);
  process.exit(1);
}

// Types: the handles are opaque; the parameter structs mirror musespark.h
// field for field (they only grow by appending, so this stays valid).
koffi.opaque('musespark_engine');
koffi.opaque('musespark_request');
koffi.opaque('musespark_result');
koffi.struct('musespark_budgets', {
  struct_size: 'uint32_t',
  agents: 'int32_t',
  refine_agents: 'int32_t',
  max_thinking_tokens: 'int32_t',
  max_answer_tokens: 'int32_t',
  max_total_tokens: 'int64_t',
  deadline_ms: 'int64_t',
  max_zooms: 'int32_t',
});
koffi.struct('musespark_vote', {
  struct_size: 'uint32_t',
  answer: 'const char *',
  display: 'const char *',
  votes: 'int32_t',
  weight: 'double',
  share: 'double',
});

const c = {
  last_error: lib.func('const char *musespark_last_error(void)'),
  engine_load: lib.func('int musespark_engine_load(const char *dir, void *params, _Out_ musespark_engine **out)'),
  engine_free: lib.func('void musespark_engine_free(musespark_engine *engine)'),
  request_init: lib.func('int musespark_request_init(_Out_ musespark_request **out)'),
  request_free: lib.func('void musespark_request_free(musespark_request *request)'),
  add_message: lib.func('int musespark_request_add_message(musespark_request *request, const char *role)'),
  add_text: lib.func('int musespark_request_add_text(musespark_request *request, const char *text)'),
  add_image_file: lib.func('int musespark_request_add_image_file(musespark_request *request, const char *path)'),
  set_mode: lib.func('int musespark_request_set_mode(musespark_request *request, int mode)'),
  set_seed: lib.func('int musespark_request_set_seed(musespark_request *request, uint64_t seed)'),
  budgets_init: lib.func('void musespark_budgets_init(_Out_ musespark_budgets *budgets)'),
  set_budgets: lib.func('int musespark_request_set_budgets(musespark_request *request, const musespark_budgets *budgets)'),
  ask: lib.func('int musespark_engine_ask(const musespark_engine *engine, const musespark_request *request, ' +
                'void *callback, void *user_data, _Out_ musespark_result **out)'),
  result_free: lib.func('void musespark_result_free(musespark_result *result)'),
  result_answer: lib.func('const char *musespark_result_answer(const musespark_result *result)'),
  vote_count: lib.func('int32_t musespark_result_vote_count(const musespark_result *result)'),
  vote_init: lib.func('void musespark_vote_init(_Out_ musespark_vote *vote)'),
  vote: lib.func('int musespark_result_vote(const musespark_result *result, int32_t index, _Inout_ musespark_vote *out)'),
  agent_count: lib.func('int32_t musespark_result_agent_count(const musespark_result *result)'),
};

class MusesparkError extends Error {}
function check(status) {
  if (status !== STATUS_OK) throw new MusesparkError(c.last_error());
}

let engine = null;
let request = null;
let result = null;
let code = 0;
try {
  const out = [null];
  check(c.engine_load(modelDir, null, out));
  engine = out[0];
  check(c.request_init(out));
  request = out[0];

  check(c.add_message(request, 'user'));
  check(c.add_image_file(request, imagePath));
  check(c.add_text(request, question));
  check(c.set_mode(request, MODE_THINKING));
  const budgets = {};
  c.budgets_init(budgets);
  budgets.agents = 3;
  budgets.max_thinking_tokens = 8;
  budgets.max_answer_tokens = 4;
  check(c.set_budgets(request, budgets));
  check(c.set_seed(request, 1));

  check(c.ask(engine, request, null, null, out));
  result = out[0];

  const lines = [`answer: ${c.result_answer(result)}`];
  const count = c.vote_count(result);
  for (let i = 0; i < count; ++i) {
    const vote = {};
    c.vote_init(vote);
    check(c.vote(result, i, vote));
    lines.push(`vote: ${vote.answer} (${vote.votes} votes, ${(vote.share * 100).toFixed(1)}%)`);
  }
  lines.push(`agents: ${c.agent_count(result)}`);
  process.stdout.write(lines.join('\n') + '\n');
} catch (e) {
  if (!(e instanceof MusesparkError)) throw e;
  console.error(`error: ${e.message}`);
  code = 1;
} finally {
  c.result_free(result);
  c.request_free(request);
  c.engine_free(engine);
}
process.exitCode = code;
