/* The C ABI from C: versions, struct sizes, every function with NULL and bad
 * arguments, then a real model (argv[1]): a Thinking ask with an image and
 * a zoom, streaming events, the trace, tokenizer round trip, generation, and
 * cancelling from the callback.
 *
 * Usage: test_capi_c MODEL_DIR      prints "N passed, 0 failed"; exits 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "musespark/musespark.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond)                                                                                          \
  do {                                                                                                       \
    if (cond) {                                                                                              \
      ++passed;                                                                                              \
    } else {                                                                                                 \
      ++failed;                                                                                              \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: \"%s\"\n", __FILE__, __LINE__, #cond,           \
              musespark_last_error());                                                                       \
    }                                                                                                        \
  } while (0)

/* `expr` returns `status` and leaves a message. */
#define CHECK_FAILS(expr, status)                                                                            \
  do {                                                                                                       \
    musespark_status got_ = (expr);                                                                          \
    if (got_ != (status))                                                                                    \
      fprintf(stderr, "%s:%d: %s gave %s, expected %s\n", __FILE__, __LINE__, #expr,                         \
              musespark_status_name(got_), musespark_status_name(status));                                   \
    CHECK(got_ == (status));                                                                                 \
    CHECK(musespark_last_error()[0] != '\0');                                                                \
  } while (0)

/* A function without a status: it must leave a message. */
#define CHECK_REPORTS(expr)                                                                                  \
  do {                                                                                                       \
    expr;                                                                                                    \
    CHECK(musespark_last_error()[0] != '\0');                                                                \
  } while (0)

#define CHECK_OK(expr)                                                                                       \
  do {                                                                                                       \
    musespark_status got_ = (expr);                                                                          \
    if (got_ != MUSESPARK_STATUS_OK)                                                                         \
      fprintf(stderr, "%s:%d: %s gave %s: %s\n", __FILE__, __LINE__, #expr, musespark_status_name(got_),     \
              musespark_last_error());                                                                       \
    CHECK(got_ == MUSESPARK_STATUS_OK);                                                                      \
    CHECK(musespark_last_error()[0] == '\0');                                                                \
  } while (0)

#define IMAGE_W 64
#define IMAGE_H 48

static void check_versions(void) {
  char expected[64];
  musespark_engine_params ep;
  musespark_model_info info;
  musespark_budgets budgets;
  musespark_sampling sampling;
  musespark_generate_params gp;
  musespark_agent agent;
  musespark_vote vote;
  musespark_usage usage;
  musespark_visual_action action;

  snprintf(expected, sizeof expected, "%d.%d.%d", MUSESPARK_VERSION_MAJOR, MUSESPARK_VERSION_MINOR,
           MUSESPARK_VERSION_PATCH);
  CHECK(strcmp(musespark_version_string(), expected) == 0);
  CHECK(musespark_abi_version() == MUSESPARK_ABI_VERSION);
  CHECK(strcmp(musespark_status_name(MUSESPARK_STATUS_OK), "ok") == 0);
  CHECK(strcmp(musespark_status_name(MUSESPARK_STATUS_BUFFER_TOO_SMALL), "buffer_too_small") == 0);
  CHECK(strcmp(musespark_status_name((musespark_status)99), "unknown") == 0);

  /* Every init sets struct_size to the struct this program was compiled with. */
  memset(&ep, 0xab, sizeof ep);
  musespark_engine_params_init(&ep);
  CHECK(ep.struct_size == sizeof ep && ep.dtype == MUSESPARK_DTYPE_F32 && ep.threads == 0 && ep.max_context == 0);
  musespark_model_info_init(&info);
  CHECK(info.struct_size == sizeof info);
  musespark_budgets_init(&budgets);
  CHECK(budgets.struct_size == sizeof budgets && budgets.agents == 0 && budgets.max_zooms == 2);
  musespark_sampling_init(&sampling);
  CHECK(sampling.struct_size == sizeof sampling && sampling.temperature > 0.69f && sampling.temperature < 0.71f);
  CHECK(sampling.top_p > 0.94f && sampling.repetition_penalty == 1.0f);
  musespark_generate_params_init(&gp);
  CHECK(gp.struct_size == sizeof gp && gp.max_tokens == 128 && gp.chat == 0 && gp.thinking == 1 &&
        gp.sampling == NULL);
  musespark_agent_init(&agent);
  CHECK(agent.struct_size == sizeof agent);
  musespark_vote_init(&vote);
  CHECK(vote.struct_size == sizeof vote);
  musespark_usage_init(&usage);
  CHECK(usage.struct_size == sizeof usage);
  musespark_visual_action_init(&action);
  CHECK(action.struct_size == sizeof action);
  CHECK(musespark_last_error()[0] == '\0');
}

/* Every function with NULL and bad arguments, before any model is loaded. */
static void check_bad_arguments(const char* model_dir) {
  musespark_engine* engine = (musespark_engine*)1;
  musespark_request* request = NULL;
  musespark_result* result = (musespark_result*)1;
  musespark_engine_params ep;
  musespark_model_info info;
  musespark_budgets budgets;
  musespark_sampling sampling;
  musespark_generate_params gp;
  musespark_agent agent;
  musespark_vote vote;
  musespark_usage usage;
  musespark_visual_action action;
  int32_t ids[4] = {1, 2, 3, 4};
  size_t count = 7;
  char text[8];
  const uint8_t garbage[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  uint8_t pixels[2 * 2 * 3];
  memset(pixels, 0, sizeof pixels);

  /* init functions with NULL */
  CHECK_REPORTS(musespark_engine_params_init(NULL));
  CHECK_REPORTS(musespark_model_info_init(NULL));
  CHECK_REPORTS(musespark_budgets_init(NULL));
  CHECK_REPORTS(musespark_sampling_init(NULL));
  CHECK_REPORTS(musespark_generate_params_init(NULL));
  CHECK_REPORTS(musespark_agent_init(NULL));
  CHECK_REPORTS(musespark_vote_init(NULL));
  CHECK_REPORTS(musespark_usage_init(NULL));
  CHECK_REPORTS(musespark_visual_action_init(NULL));
  /* free functions accept NULL (and leave no error) */
  musespark_engine_free(NULL);
  musespark_request_free(NULL);
  musespark_result_free(NULL);

  /* engine */
  musespark_engine_params_init(&ep);
  CHECK_FAILS(musespark_engine_load(NULL, NULL, &engine), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(engine == NULL);
  CHECK_FAILS(musespark_engine_load(model_dir, NULL, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_engine_load("/nonexistent/musespark-model", NULL, &engine), MUSESPARK_STATUS_IO);
  CHECK(strstr(musespark_last_error(), "/nonexistent/musespark-model") != NULL);
  CHECK(engine == NULL);
  ep.struct_size = 0;
  CHECK_FAILS(musespark_engine_load(model_dir, &ep, &engine), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(musespark_last_error(), "struct_size") != NULL);
  ep.struct_size = sizeof ep - 1;
  CHECK_FAILS(musespark_engine_load(model_dir, &ep, &engine), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_engine_params_init(&ep);
  ep.dtype = (musespark_dtype)7;
  CHECK_FAILS(musespark_engine_load(model_dir, &ep, &engine), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(musespark_last_error(), "dtype") != NULL);
  musespark_engine_params_init(&ep);
  ep.threads = -1;
  CHECK_FAILS(musespark_engine_load(model_dir, &ep, &engine), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_model_info_init(&info);
  CHECK_FAILS(musespark_engine_info(NULL, &info), MUSESPARK_STATUS_INVALID_ARGUMENT);

  /* requests */
  CHECK_FAILS(musespark_request_init(NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_message(NULL, "user"), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_text(NULL, "hi"), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_file(NULL, "x.png"), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_encoded(NULL, garbage, sizeof garbage), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_rgb(NULL, pixels, 2, 2), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_mode(NULL, MUSESPARK_MODE_THINKING), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_effort(NULL, MUSESPARK_EFFORT_LOW), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_seed(NULL, 1), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_budgets_init(&budgets);
  CHECK_FAILS(musespark_request_set_budgets(NULL, &budgets), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_sampling_init(&sampling);
  CHECK_FAILS(musespark_request_set_sampling(NULL, &sampling), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_early_stop(NULL, 1, 1), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_consensus_share(NULL, 0.5), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_scatter_stop(NULL, 4), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_assistant_prefix(NULL, ""), MUSESPARK_STATUS_INVALID_ARGUMENT);

  CHECK_OK(musespark_request_init(&request));
  CHECK(request != NULL);
  CHECK_FAILS(musespark_request_add_message(request, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_message(request, "robot"), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(musespark_last_error(), "robot") != NULL);
  CHECK_FAILS(musespark_request_add_text(request, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_file(request, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_file(request, "/nonexistent/picture.png"), MUSESPARK_STATUS_IO);
  CHECK_FAILS(musespark_request_add_image_encoded(request, NULL, 10), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_encoded(request, garbage, sizeof garbage), MUSESPARK_STATUS_FORMAT);
  CHECK_FAILS(musespark_request_add_image_rgb(request, NULL, 2, 2), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_rgb(request, pixels, 0, 2), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_rgb(request, pixels, 2, -3), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_add_image_rgb(request, pixels, 100000, 100000), MUSESPARK_STATUS_UNSUPPORTED);
  CHECK_FAILS(musespark_request_set_mode(request, (musespark_mode)9), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_effort(request, (musespark_effort)-1), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_budgets(request, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  budgets.struct_size = 4;
  CHECK_FAILS(musespark_request_set_budgets(request, &budgets), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_sampling(request, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  sampling.temperature = -1.0f;
  CHECK_FAILS(musespark_request_set_sampling(request, &sampling), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(musespark_last_error(), "temperature") != NULL);
  musespark_sampling_init(&sampling);
  sampling.struct_size = 0;
  CHECK_FAILS(musespark_request_set_sampling(request, &sampling), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_assistant_prefix(request, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_consensus_share(request, 1.5), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(musespark_last_error(), "share") != NULL);
  CHECK_FAILS(musespark_request_set_consensus_share(request, -0.25), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_request_set_scatter_stop(request, 1), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(musespark_last_error(), "votes") != NULL);
  CHECK(strstr(musespark_last_error(), "at least 2") != NULL);
  CHECK_FAILS(musespark_request_set_scatter_stop(request, -3), MUSESPARK_STATUS_INVALID_ARGUMENT);

  /* asking and results */
  CHECK_FAILS(musespark_engine_ask(NULL, request, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(result == NULL);
  CHECK_FAILS(musespark_engine_ask(NULL, request, NULL, NULL, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_REPORTS(CHECK(strcmp(musespark_result_answer(NULL), "") == 0));
  CHECK_REPORTS(CHECK(strcmp(musespark_result_text(NULL), "") == 0));
  CHECK_REPORTS(CHECK(strcmp(musespark_result_trace_json(NULL), "") == 0));
  CHECK_REPORTS(CHECK(musespark_result_agent_count(NULL) == 0));
  CHECK_REPORTS(CHECK(musespark_result_vote_count(NULL) == 0));
  CHECK_REPORTS(CHECK(musespark_result_visual_action_count(NULL) == 0));
  musespark_agent_init(&agent);
  CHECK_FAILS(musespark_result_agent(NULL, 0, &agent), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_vote_init(&vote);
  CHECK_FAILS(musespark_result_vote(NULL, 0, &vote), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_usage_init(&usage);
  CHECK_FAILS(musespark_result_usage(NULL, &usage), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_visual_action_init(&action);
  CHECK_FAILS(musespark_result_visual_action(NULL, 0, &action), MUSESPARK_STATUS_INVALID_ARGUMENT);

  /* lower level */
  CHECK_FAILS(musespark_tokenize(NULL, "hi", 2, ids, 4, &count), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(count == 0);
  CHECK_FAILS(musespark_detokenize(NULL, ids, 4, text, sizeof text, &count), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_generate_params_init(&gp);
  CHECK_FAILS(musespark_generate(NULL, "hi", &gp, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(result == NULL);

  musespark_request_free(request);
}

typedef struct event_counts {
  int by_kind[7];
  int total;
  size_t text_bytes;
  int bad;          /* events that broke a rule (struct_size, text, kind) */
  int cancel_after; /* return 0 from the first TEXT_DELTA at or after this many events; -1 never */
  int cancels;
} event_counts;

static int32_t on_event(const musespark_event* e, void* user_data) {
  event_counts* c = (event_counts*)user_data;
  if (e == NULL || e->struct_size < sizeof *e || e->text == NULL || (int)e->kind < 0 || (int)e->kind > 6) {
    ++c->bad;
    return 1;
  }
  ++c->by_kind[e->kind];
  ++c->total;
  c->text_bytes += e->text_length;
  if (e->kind == MUSESPARK_EVENT_TEXT_DELTA && c->cancel_after >= 0 && c->total >= c->cancel_after) {
    ++c->cancels;
    return 0;
  }
  return 1;
}

static musespark_request* thinking_request(const char* prefix) {
  musespark_request* request = NULL;
  musespark_budgets budgets;
  uint8_t pixels[IMAGE_W * IMAGE_H * 3];
  int i;
  for (i = 0; i < IMAGE_W * IMAGE_H * 3; ++i) pixels[i] = (uint8_t)(i * 7);

  CHECK_OK(musespark_request_init(&request));
  CHECK_OK(musespark_request_add_message(request, "system"));
  CHECK_OK(musespark_request_add_text(request, "You are terse."));
  CHECK_OK(musespark_request_add_message(request, "user"));
  CHECK_OK(musespark_request_add_image_rgb(request, pixels, IMAGE_W, IMAGE_H));
  CHECK_OK(musespark_request_add_text(request, "What is in the top-left corner?"));
  CHECK_OK(musespark_request_set_mode(request, MUSESPARK_MODE_THINKING));
  CHECK_OK(musespark_request_set_effort(request, MUSESPARK_EFFORT_LOW));
  CHECK_OK(musespark_request_set_seed(request, 42));
  musespark_budgets_init(&budgets);
  budgets.agents = 2;
  budgets.max_thinking_tokens = 12;
  budgets.max_answer_tokens = 4;
  budgets.max_zooms = 1;
  CHECK_OK(musespark_request_set_budgets(request, &budgets));
  CHECK_OK(musespark_request_set_early_stop(request, 0, 0));
  CHECK_OK(musespark_request_set_consensus_share(request, 0.75));
  CHECK_OK(musespark_request_set_scatter_stop(request, 5));
  CHECK_OK(musespark_request_set_assistant_prefix(request, prefix));
  return request;
}

static void check_model(const char* model_dir) {
  musespark_engine* engine = NULL;
  musespark_engine_params ep;
  musespark_model_info info;
  musespark_request* request;
  musespark_result* result = NULL;
  musespark_agent agent;
  musespark_vote vote;
  musespark_usage usage;
  musespark_visual_action action;
  musespark_sampling sampling;
  musespark_generate_params gp;
  event_counts events;
  int32_t n, i, cancelled;
  int32_t ids[64];
  int32_t bad_id = -5;
  size_t count = 0, length = 0;
  char text[256];
  const char* hello = "Hello world, 17*23 = 391!";

  musespark_engine_params_init(&ep);
  ep.threads = 1;
  CHECK_OK(musespark_engine_load(model_dir, &ep, &engine));
  if (engine == NULL) return;

  musespark_model_info_init(&info);
  CHECK_OK(musespark_engine_info(engine, &info));
  CHECK(strcmp(info.architecture, "Qwen3ForCausalLM") == 0);
  CHECK(info.vision == 1 && info.hidden_size == 32 && info.num_layers == 1 && info.vocab_size > 0);
  CHECK(info.threads == 1 && info.max_context > 0 && info.parameter_count > 0);
  info.struct_size = 8;
  CHECK_FAILS(musespark_engine_info(engine, &info), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_engine_info(engine, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);

  /* An empty request is refused by ask. */
  CHECK_OK(musespark_request_init(&request));
  CHECK_FAILS(musespark_engine_ask(engine, request, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(result == NULL);
  CHECK_FAILS(musespark_engine_ask(engine, NULL, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  musespark_request_free(request);

  /* Thinking with an image; the prefix makes every agent zoom. */
  request = thinking_request("<zoom>(0,0),(500,500)</zoom>");
  memset(&events, 0, sizeof events);
  events.cancel_after = -1;
  CHECK_OK(musespark_engine_ask(engine, request, on_event, &events, &result));
  CHECK(result != NULL);
  if (result != NULL) {
    CHECK(events.bad == 0);
    CHECK(events.by_kind[MUSESPARK_EVENT_AGENT_STARTED] == 2);
    CHECK(events.by_kind[MUSESPARK_EVENT_AGENT_FINISHED] == 2);
    CHECK(events.by_kind[MUSESPARK_EVENT_TEXT_DELTA] > 0 && events.text_bytes > 0);
    CHECK(events.by_kind[MUSESPARK_EVENT_FINAL] == 1);
    CHECK(musespark_result_answer(result) != NULL && musespark_result_text(result) != NULL);
    CHECK(strstr(musespark_result_trace_json(result), "\"agents\"") != NULL);
    CHECK(strstr(musespark_result_trace_json(result), "\"schema_version\"") != NULL);
    CHECK(strstr(musespark_result_trace_json(result), "\"consensus_share\":0.75") != NULL);
    CHECK(strstr(musespark_result_trace_json(result), "\"scatter_stop\":5") != NULL);
    CHECK(musespark_result_trace_json(result) == musespark_result_trace_json(result)); /* computed once */

    n = musespark_result_agent_count(result);
    CHECK(n == 2);
    for (i = 0; i < n; ++i) {
      musespark_agent_init(&agent);
      CHECK_OK(musespark_result_agent(result, i, &agent));
      CHECK(agent.role != NULL && strcmp(agent.role, "agent") == 0);
      CHECK(agent.round == 1 && agent.thinking != NULL && agent.answer_text != NULL && agent.answer != NULL);
      CHECK(agent.normalized_answer != NULL && agent.stop_reason != NULL && agent.stop_reason[0] != '\0');
      CHECK(agent.thinking_tokens > 0 && agent.thinking_tokens <= 40);
    }
    CHECK_FAILS(musespark_result_agent(result, n, &agent), MUSESPARK_STATUS_INVALID_ARGUMENT);
    CHECK_FAILS(musespark_result_agent(result, -1, &agent), MUSESPARK_STATUS_INVALID_ARGUMENT);
    CHECK_FAILS(musespark_result_agent(result, 0, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
    agent.struct_size = 0;
    CHECK_FAILS(musespark_result_agent(result, 0, &agent), MUSESPARK_STATUS_INVALID_ARGUMENT);

    n = musespark_result_vote_count(result);
    CHECK(n >= 0 && n <= 2);
    for (i = 0; i < n; ++i) {
      musespark_vote_init(&vote);
      CHECK_OK(musespark_result_vote(result, i, &vote));
      CHECK(vote.answer != NULL && vote.display != NULL && vote.votes >= 1 && vote.share >= 0 && vote.share <= 1);
    }
    CHECK_FAILS(musespark_result_vote(result, n, &vote), MUSESPARK_STATUS_INVALID_ARGUMENT);

    musespark_usage_init(&usage);
    CHECK_OK(musespark_result_usage(result, &usage));
    CHECK(usage.prompt_tokens > 0 && usage.generated_tokens > 0 && usage.total_seconds > 0);
    usage.struct_size = 3;
    CHECK_FAILS(musespark_result_usage(result, &usage), MUSESPARK_STATUS_INVALID_ARGUMENT);

    n = musespark_result_visual_action_count(result);
    CHECK(n >= 2); /* one zoom per agent, from the prefix */
    for (i = 0; i < n; ++i) {
      musespark_visual_action_init(&action);
      CHECK_OK(musespark_result_visual_action(result, i, &action));
      CHECK(action.kind != NULL && (strcmp(action.kind, "zoom") == 0 || strcmp(action.kind, "box") == 0));
      CHECK(action.image == 0 && action.x0 >= 0 && action.x0 < action.x1 && action.x1 <= IMAGE_W);
      CHECK(action.y0 >= 0 && action.y0 < action.y1 && action.y1 <= IMAGE_H);
      if (i == 0) {
        CHECK(strcmp(action.kind, "zoom") == 0 && action.applied == 1);
        CHECK(action.x0 == 0 && action.y0 == 0 && action.x1 == IMAGE_W / 2 && action.y1 == IMAGE_H / 2);
        CHECK(action.crop_width == IMAGE_W / 2 && action.crop_height == IMAGE_H / 2);
      }
    }
    CHECK_FAILS(musespark_result_visual_action(result, n, &action), MUSESPARK_STATUS_INVALID_ARGUMENT);
    musespark_result_free(result);
    result = NULL;
  }
  musespark_request_free(request);

  /* Cancelling from the callback: every agent stops, the call still succeeds. */
  request = thinking_request("");
  memset(&events, 0, sizeof events);
  events.cancel_after = 1;
  CHECK_OK(musespark_engine_ask(engine, request, on_event, &events, &result));
  CHECK(events.cancels >= 1 && events.bad == 0);
  if (result != NULL) {
    n = musespark_result_agent_count(result);
    cancelled = 0;
    for (i = 0; i < n; ++i) {
      musespark_agent_init(&agent);
      CHECK_OK(musespark_result_agent(result, i, &agent));
      if (strcmp(agent.stop_reason, "cancelled") == 0) ++cancelled;
      CHECK(agent.thinking_tokens + agent.answer_tokens <= 3);
    }
    CHECK(n >= 1 && cancelled >= 1);
    musespark_result_free(result);
    result = NULL;
  }
  musespark_request_free(request);

  /* Tokenizer: two calls each way, and the round trip. */
  CHECK(musespark_tokenize(engine, hello, strlen(hello), NULL, 0, &count) == MUSESPARK_STATUS_BUFFER_TOO_SMALL);
  CHECK(musespark_last_error()[0] != '\0');
  CHECK(count > 3 && count <= 64);
  CHECK(musespark_tokenize(engine, hello, strlen(hello), ids, 1, &count) == MUSESPARK_STATUS_BUFFER_TOO_SMALL);
  CHECK_OK(musespark_tokenize(engine, hello, strlen(hello), ids, 64, &count));
  CHECK_OK(musespark_tokenize(engine, NULL, 0, NULL, 0, &length));
  CHECK(length == 0);
  CHECK_FAILS(musespark_tokenize(engine, NULL, 3, ids, 64, &length), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_tokenize(engine, hello, 3, ids, 64, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_tokenize(engine, "\xff\xfe", 2, ids, 64, &length), MUSESPARK_STATUS_FORMAT);

  CHECK(musespark_detokenize(engine, ids, count, NULL, 0, &length) == MUSESPARK_STATUS_BUFFER_TOO_SMALL);
  CHECK(length == strlen(hello));
  CHECK(musespark_detokenize(engine, ids, count, text, length, &length) == MUSESPARK_STATUS_BUFFER_TOO_SMALL);
  CHECK(text[0] == '\0');
  CHECK_OK(musespark_detokenize(engine, ids, count, text, sizeof text, &length));
  CHECK(strcmp(text, hello) == 0 && length == strlen(hello));
  CHECK_FAILS(musespark_detokenize(engine, &bad_id, 1, text, sizeof text, &length), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_detokenize(engine, NULL, 2, text, sizeof text, &length), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_detokenize(engine, ids, count, text, sizeof text, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);

  /* Generation: greedy is deterministic; sampling and chat work; the callback streams. */
  musespark_generate_params_init(&gp);
  gp.max_tokens = 6;
  memset(&events, 0, sizeof events);
  events.cancel_after = -1;
  CHECK_OK(musespark_generate(engine, "The capital of France is", &gp, on_event, &events, &result));
  if (result != NULL) {
    char first[256];
    snprintf(first, sizeof first, "%s", musespark_result_text(result));
    CHECK(strstr(musespark_result_trace_json(result), "\"tokens\"") != NULL);
    CHECK(strstr(musespark_result_trace_json(result), "\"stop_reason\"") != NULL);
    CHECK(strcmp(musespark_result_answer(result), musespark_result_text(result)) == 0);
    CHECK(musespark_result_agent_count(result) == 0 && musespark_last_error()[0] == '\0');
    musespark_usage_init(&usage);
    CHECK_OK(musespark_result_usage(result, &usage));
    CHECK(usage.generated_tokens >= 1 && usage.generated_tokens <= 6 && usage.prompt_tokens >= 5);
    CHECK(events.bad == 0 && events.text_bytes == strlen(first));
    musespark_result_free(result);
    result = NULL;
    CHECK_OK(musespark_generate(engine, "The capital of France is", &gp, NULL, NULL, &result));
    if (result != NULL) CHECK(strcmp(first, musespark_result_text(result)) == 0);
    musespark_result_free(result);
    result = NULL;
  }
  musespark_sampling_init(&sampling);
  gp.sampling = &sampling;
  gp.seed = 7;
  gp.chat = 1;
  gp.thinking = 0;
  CHECK_OK(musespark_generate(engine, "Say hi.", &gp, NULL, NULL, &result));
  musespark_result_free(result);
  result = NULL;
  /* cancel at the first text delta */
  gp.max_tokens = 20;
  memset(&events, 0, sizeof events);
  events.cancel_after = 0;
  CHECK_OK(musespark_generate(engine, "Count: one two", &gp, on_event, &events, &result));
  if (result != NULL) {
    CHECK(events.cancels == 1);
    if (events.cancels > 0) CHECK(strstr(musespark_result_trace_json(result), "\"cancelled\"") != NULL);
    musespark_result_free(result);
    result = NULL;
  }
  gp.max_tokens = 0;
  CHECK_FAILS(musespark_generate(engine, "x", &gp, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  gp.max_tokens = 4;
  sampling.top_p = 2.0f;
  CHECK_FAILS(musespark_generate(engine, "x", &gp, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  sampling.struct_size = 0;
  CHECK_FAILS(musespark_generate(engine, "x", &gp, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  gp.struct_size = 0;
  CHECK_FAILS(musespark_generate(engine, "x", &gp, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_generate(engine, NULL, NULL, NULL, NULL, &result), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK_FAILS(musespark_generate(engine, "x", NULL, NULL, NULL, NULL), MUSESPARK_STATUS_INVALID_ARGUMENT);
  CHECK(result == NULL);

  musespark_engine_free(engine);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  check_versions();
  check_bad_arguments(argv[1]);
  check_model(argv[1]);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
