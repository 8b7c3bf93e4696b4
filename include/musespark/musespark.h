/*
 * musespark — the stable C ABI.
 *
 * Any language can call this header's functions (C99; no C++ needed). It
 * wraps the C++ API (the .hpp headers beside it) and follows a few rules so
 * that bindings never break silently:
 *
 *  - Opaque handles (musespark_engine, musespark_request, musespark_result)
 *    come in init/load and free pairs; free functions accept NULL.
 *  - Parameter structs are passed by pointer and start with `struct_size`
 *    (set it with the matching *_init function, which fills the defaults).
 *    The ABI only grows by appending fields: a library reading an older,
 *    smaller struct uses defaults for the fields it lacks. A struct never
 *    embeds another parameter struct by value (it would stop growing); it
 *    points to it. For structs the library fills in (model info, agent,
 *    vote, usage, visual action) it writes only the fields that fit in the
 *    caller's struct_size. A struct_size of 0 or smaller than the struct's
 *    first version is INVALID_ARGUMENT.
 *  - A *_init function writes exactly the fields of the header version it
 *    first appeared in; when a later version appends fields it adds a new
 *    init function, so an old program never has more written than it has.
 *  - Every function that can fail returns a musespark_status; the message of
 *    the last error is kept per thread (musespark_last_error). No exception
 *    ever crosses this boundary. Functions that return a value rather than a
 *    status (counts, strings, *_init) report NULL arguments through
 *    musespark_last_error and return 0 / "" (or do nothing).
 *  - Integers are sized (int32_t, int64_t); enum values are prefixed by their
 *    enum's name.
 *  - Strings are UTF-8, NUL-terminated, and owned by the object they come
 *    from (valid until it is freed), unless a function says otherwise.
 *
 * Thread safety: an engine can serve several threads at once —
 * musespark_engine_ask, musespark_tokenize, musespark_detokenize and
 * musespark_generate may run concurrently on one engine. A request or a
 * result must not be changed while another thread uses it; reading a result
 * from several threads is fine. musespark_last_error is per thread.
 */
#ifndef MUSESPARK_H
#define MUSESPARK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#if defined(MUSESPARK_BUILDING)
#define MUSESPARK_API __declspec(dllexport)
#else
#define MUSESPARK_API __declspec(dllimport)
#endif
#else
#define MUSESPARK_API __attribute__((visibility("default")))
#endif

/* The library's version, and the ABI version: the ABI version changes only
 * when something is removed or changes meaning (never, we hope); appending
 * functions or struct fields keeps it. Compare the macros (what you compiled
 * against) with the functions (what you loaded). */
#define MUSESPARK_VERSION_MAJOR 0
#define MUSESPARK_VERSION_MINOR 1
#define MUSESPARK_VERSION_PATCH 0
#define MUSESPARK_ABI_VERSION 1

MUSESPARK_API const char* musespark_version_string(void); /* "0.1.0"; static */
MUSESPARK_API uint32_t musespark_abi_version(void);

/* ------------------------------------------------------------ errors */

typedef enum musespark_status {
  MUSESPARK_STATUS_OK = 0,
  MUSESPARK_STATUS_INVALID_ARGUMENT = 1, /* NULL where a value is needed, out-of-range value, bad struct_size */
  MUSESPARK_STATUS_IO = 2,               /* a file is missing, unreadable or truncated */
  MUSESPARK_STATUS_FORMAT = 3,           /* a file or value is malformed */
  MUSESPARK_STATUS_UNSUPPORTED = 4,      /* well-formed but not supported (architecture, images on a text model) */
  MUSESPARK_STATUS_CONTEXT_OVERFLOW = 5, /* the prompt does not fit in the context */
  MUSESPARK_STATUS_BUFFER_TOO_SMALL = 6, /* the caller's buffer is too small; the size needed is returned */
  MUSESPARK_STATUS_OUT_OF_MEMORY = 7,
  MUSESPARK_STATUS_INTERNAL = 8          /* a bug in musespark */
} musespark_status;

/* The message of the last error on this thread: names the file and field
 * at fault. Every call other than musespark_last_error, musespark_status_name
 * and the version functions first resets it to "", so it describes the most
 * recent call. Valid until the next musespark call on this thread. */
MUSESPARK_API const char* musespark_last_error(void);

/* "ok", "invalid_argument", ...; static. */
MUSESPARK_API const char* musespark_status_name(musespark_status status);

/* ------------------------------------------------------------ enums */

typedef enum musespark_mode {
  MUSESPARK_MODE_INSTANT = 0,
  MUSESPARK_MODE_THINKING = 1,
  MUSESPARK_MODE_CONTEMPLATING = 2,
  MUSESPARK_MODE_AUTO = 3
} musespark_mode;

typedef enum musespark_effort {
  MUSESPARK_EFFORT_MINIMAL = 0,
  MUSESPARK_EFFORT_LOW = 1,
  MUSESPARK_EFFORT_MEDIUM = 2,
  MUSESPARK_EFFORT_HIGH = 3,
  MUSESPARK_EFFORT_XHIGH = 4
} musespark_effort;

/* INT8: matrices quantised to int8 at load (per output row), the rest bf16.
   Q4: 4-bit matrices (a GGUF file's blocks kept as they are); see DType::q4 in model.hpp. */
typedef enum musespark_dtype {
  MUSESPARK_DTYPE_F32 = 0,
  MUSESPARK_DTYPE_BF16 = 1,
  MUSESPARK_DTYPE_INT8 = 2,
  MUSESPARK_DTYPE_Q4 = 3
} musespark_dtype;

/* ------------------------------------------------------------ engine */

typedef struct musespark_engine musespark_engine;

typedef struct musespark_engine_params {
  uint32_t struct_size;  /* sizeof(musespark_engine_params) */
  musespark_dtype dtype; /* default F32 */
  int32_t threads;       /* 0 (default): one per core */
  int64_t max_context;   /* 0 (default): min(model, 4096) */
} musespark_engine_params;

MUSESPARK_API void musespark_engine_params_init(musespark_engine_params* params);

/* Loads an HF-layout model folder. `params` may be NULL (defaults). On
 * success *out is a new engine (free it with musespark_engine_free). */
MUSESPARK_API musespark_status musespark_engine_load(const char* model_dir, const musespark_engine_params* params,
                                                     musespark_engine** out);
MUSESPARK_API void musespark_engine_free(musespark_engine* engine);

typedef struct musespark_model_info {
  uint32_t struct_size;
  const char* architecture; /* owned by the engine */
  int64_t vocab_size;
  int64_t hidden_size;
  int64_t num_layers;
  int64_t max_context;
  int64_t parameter_count;
  int32_t vision;           /* 1 if the model takes images */
  int32_t threads;
} musespark_model_info;

MUSESPARK_API void musespark_model_info_init(musespark_model_info* info);
MUSESPARK_API musespark_status musespark_engine_info(const musespark_engine* engine, musespark_model_info* out);

/* ------------------------------------------------------------ requests */

typedef struct musespark_request musespark_request;

/* A new, empty request: mode AUTO, effort MEDIUM, seed 0. */
MUSESPARK_API musespark_status musespark_request_init(musespark_request** out);
MUSESPARK_API void musespark_request_free(musespark_request* request);

/* Starts a new message ("system", "user" or "assistant"); the part functions
 * below append to the last message (a "user" message is started if there is
 * none). */
MUSESPARK_API musespark_status musespark_request_add_message(musespark_request* request, const char* role);
MUSESPARK_API musespark_status musespark_request_add_text(musespark_request* request, const char* text);
/* Images are decoded and checked when added (size limits, corrupt data):
 * from a PNG or JPEG file, from encoded bytes, or from raw RGB pixels
 * (width * height * 3 bytes, row-major). The request keeps its own copy. */
MUSESPARK_API musespark_status musespark_request_add_image_file(musespark_request* request, const char* path);
MUSESPARK_API musespark_status musespark_request_add_image_encoded(musespark_request* request, const uint8_t* data,
                                                                   size_t size);
MUSESPARK_API musespark_status musespark_request_add_image_rgb(musespark_request* request, const uint8_t* pixels,
                                                               int32_t width, int32_t height);

MUSESPARK_API musespark_status musespark_request_set_mode(musespark_request* request, musespark_mode mode);
MUSESPARK_API musespark_status musespark_request_set_effort(musespark_request* request, musespark_effort effort);
MUSESPARK_API musespark_status musespark_request_set_seed(musespark_request* request, uint64_t seed);

typedef struct musespark_budgets {
  uint32_t struct_size;
  int32_t agents;              /* 0: by effort */
  int32_t refine_agents;       /* 0: by effort */
  int32_t max_thinking_tokens; /* 0: by effort */
  int32_t max_answer_tokens;   /* 0: by effort */
  int64_t max_total_tokens;    /* 0: no cap */
  int64_t deadline_ms;         /* 0: none */
  int32_t max_zooms;           /* zoom-ins per agent; default 2 */
} musespark_budgets;

MUSESPARK_API void musespark_budgets_init(musespark_budgets* budgets);
/* Budget values are checked by musespark_engine_ask (INVALID_ARGUMENT
 * naming the field, e.g. "budgets.agents": 0 to 64). */
MUSESPARK_API musespark_status musespark_request_set_budgets(musespark_request* request,
                                                             const musespark_budgets* budgets);

typedef struct musespark_sampling {
  uint32_t struct_size;
  float temperature;        /* default 0.7 (Instant: 0, greedy) */
  int32_t top_k;            /* 0: off */
  float top_p;              /* default 0.95 */
  float min_p;              /* 0: off */
  float repetition_penalty; /* 1: off */
} musespark_sampling;

MUSESPARK_API void musespark_sampling_init(musespark_sampling* sampling);
/* Without this call the engine's defaults apply (Instant greedy, agents
 * sample at temperature 0.7, top_p 0.95). */
MUSESPARK_API musespark_status musespark_request_set_sampling(musespark_request* request,
                                                              const musespark_sampling* sampling);
/* DeepConf early stop and consensus stop (both on by default). */
MUSESPARK_API musespark_status musespark_request_set_early_stop(musespark_request* request, int32_t early_stop,
                                                                int32_t consensus_stop);
/* DeepConf's adaptive sampling (needs consensus stop): the round also ends
 * once the warm-up agents have voted and the leading answer holds at least
 * `share` of the confidence-weighted vote; until then the waiting agents
 * start one at a time, each only while the votes still disagree.
 * 0 (default): off. In [0, 1], else INVALID_ARGUMENT. */
MUSESPARK_API musespark_status musespark_request_set_consensus_share(musespark_request* request, double share);
/* Scatter stop (needs consensus stop): the round also ends once `votes`
 * agents have voted and no two gave the same answer; the leader so far wins.
 * 0 (default): off; else at least 2, else INVALID_ARGUMENT. */
MUSESPARK_API musespark_status musespark_request_set_scatter_stop(musespark_request* request, int32_t votes);
/* Text each agent's reply starts with, fed as if the model had written it
 * (after any <think> the template opens): steers the format, or drives the
 * visual tools, e.g. "<zoom>(0,0),(500,500)</zoom>" (0-1000 coordinates of
 * the first image). "" (default): none. The request keeps a copy. */
MUSESPARK_API musespark_status musespark_request_set_assistant_prefix(musespark_request* request, const char* prefix);

/* ------------------------------------------------------------ streaming */

typedef enum musespark_event_kind {
  MUSESPARK_EVENT_AGENT_STARTED = 0,
  MUSESPARK_EVENT_TEXT_DELTA = 1,
  MUSESPARK_EVENT_STEP = 2,
  MUSESPARK_EVENT_AGENT_FINISHED = 3,
  MUSESPARK_EVENT_VOTE_UPDATE = 4,
  MUSESPARK_EVENT_ESCALATION = 5,
  MUSESPARK_EVENT_FINAL = 6
} musespark_event_kind;

typedef struct musespark_event {
  uint32_t struct_size;
  musespark_event_kind kind;
  int32_t agent;      /* -1 when the event is not about one agent */
  int32_t round;
  const char* text;   /* text delta, step, or the final answer; not NUL-terminated: use text_length */
  size_t text_length;
  int32_t in_thinking;
  int64_t tokens;     /* the agent's generated tokens so far */
  double confidence;  /* the agent's current group confidence */
} musespark_event;

/* Called on the thread that called musespark_engine_ask; the event is valid
 * only during the call. Return 0 to cancel (agents stop, the result holds
 * what there is), non-zero to go on. */
typedef int32_t (*musespark_event_callback)(const musespark_event* event, void* user_data);

/* ------------------------------------------------------------ asking */

typedef struct musespark_result musespark_result;

/* Answers `request` in its mode. `callback` may be NULL. On success *out is
 * a new result (free it with musespark_result_free). */
MUSESPARK_API musespark_status musespark_engine_ask(const musespark_engine* engine, const musespark_request* request,
                                                    musespark_event_callback callback, void* user_data,
                                                    musespark_result** out);
MUSESPARK_API void musespark_result_free(musespark_result* result);

MUSESPARK_API const char* musespark_result_answer(const musespark_result* result); /* "" if none */
MUSESPARK_API const char* musespark_result_text(const musespark_result* result);   /* the winning answer text */
/* The whole reasoning trace as JSON (docs/trace.md). */
MUSESPARK_API const char* musespark_result_trace_json(const musespark_result* result);

typedef struct musespark_agent {
  uint32_t struct_size;
  int32_t id;
  int32_t round;
  const char* role;              /* "agent", "instant", "aggregator" */
  const char* thinking;
  const char* answer_text;
  const char* answer;
  const char* normalized_answer;
  const char* stop_reason;       /* "eos", "budget", "low_confidence", "consensus", "deadline", "cancelled" */
  int64_t thinking_tokens;
  int64_t answer_tokens;
  double confidence_mean;
  double confidence_lowest_group;
  double confidence_bottom10;
  double confidence_tail;
  double vote_weight;
} musespark_agent;

typedef struct musespark_vote {
  uint32_t struct_size;
  const char* answer;  /* normalised */
  const char* display; /* as written */
  int32_t votes;
  double weight;
  double share;
} musespark_vote;

typedef struct musespark_usage {
  uint32_t struct_size;
  int64_t prompt_tokens;
  int64_t generated_tokens;
  double prefill_seconds;
  double decode_seconds;
  double total_seconds;
  double tokens_per_second;
} musespark_usage;

typedef struct musespark_visual_action {
  uint32_t struct_size;
  int32_t agent;
  const char* kind;    /* "box" or "zoom" */
  int32_t image;
  int32_t x0, y0, x1, y1; /* pixels of the original image, x1 and y1 exclusive */
  int32_t applied;
  int32_t crop_width, crop_height;
} musespark_visual_action;

MUSESPARK_API void musespark_agent_init(musespark_agent* agent);
MUSESPARK_API void musespark_vote_init(musespark_vote* vote);
MUSESPARK_API void musespark_usage_init(musespark_usage* usage);
MUSESPARK_API void musespark_visual_action_init(musespark_visual_action* action);

MUSESPARK_API int32_t musespark_result_agent_count(const musespark_result* result);
MUSESPARK_API musespark_status musespark_result_agent(const musespark_result* result, int32_t index,
                                                      musespark_agent* out);
MUSESPARK_API int32_t musespark_result_vote_count(const musespark_result* result);
MUSESPARK_API musespark_status musespark_result_vote(const musespark_result* result, int32_t index,
                                                     musespark_vote* out);
MUSESPARK_API musespark_status musespark_result_usage(const musespark_result* result, musespark_usage* out);
MUSESPARK_API int32_t musespark_result_visual_action_count(const musespark_result* result);
MUSESPARK_API musespark_status musespark_result_visual_action(const musespark_result* result, int32_t index,
                                                              musespark_visual_action* out);

/* ------------------------------------------------------------ lower level */

/* Token ids of `text` (length bytes; no BOS/EOS added; special tokens
 * recognised). Two calls: with ids NULL (or too small) it returns
 * BUFFER_TOO_SMALL (OK when count is 0) and *count says how many are needed. */
MUSESPARK_API musespark_status musespark_tokenize(const musespark_engine* engine, const char* text, size_t length,
                                                  int32_t* ids, size_t capacity, size_t* count);
/* Text of `ids`, NUL-terminated in `out` (capacity bytes); *length is the
 * text's length without the NUL (BUFFER_TOO_SMALL when it does not fit). */
MUSESPARK_API musespark_status musespark_detokenize(const musespark_engine* engine, const int32_t* ids, size_t count,
                                                    char* out, size_t capacity, size_t* length);

typedef struct musespark_generate_params {
  uint32_t struct_size;
  int32_t max_tokens;      /* default 128 */
  int32_t chat;            /* 1: wrap the prompt in the chat template as one user turn (default 0) */
  int32_t thinking;        /* with chat: enable_thinking (default 1) */
  const musespark_sampling* sampling; /* NULL (default): greedy; read during the call only */
  uint64_t seed;
} musespark_generate_params;

MUSESPARK_API void musespark_generate_params_init(musespark_generate_params* params);
/* Generates from `prompt` (text); stops at end-of-sequence or max_tokens.
 * Without chat, the tokenizer's BOS token (if it has one) is put first.
 * Text deltas stream through `callback` (MUSESPARK_EVENT_TEXT_DELTA, agent 0;
 * may be NULL); returning 0 stops generation (stop_reason "cancelled"). The
 * result's answer and text are the generated text, its usage is filled (no
 * agents, votes or visual actions); its trace JSON is
 * {"tokens": [...], "text": ..., "stop_reason": "eos"|"length"|"cancelled"}. */
MUSESPARK_API musespark_status musespark_generate(const musespark_engine* engine, const char* prompt,
                                                  const musespark_generate_params* params,
                                                  musespark_event_callback callback, void* user_data,
                                                  musespark_result** out);

#ifdef __cplusplus
}
#endif

#endif /* MUSESPARK_H */
