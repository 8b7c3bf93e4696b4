/*
 * musespark from C: ask a question about an image in Thinking mode and print
 * the answer and the vote.
 *
 *   usage: example_c MODEL_DIR IMAGE_PATH [QUESTION]
 *
 * Uses only the stable C ABI (include/musespark/musespark.h). Every handle
 * is freed on every path, so the program is clean under valgrind.
 */
#include <stdio.h>
#include <stdlib.h>

#include <musespark/musespark.h>

#define DEFAULT_QUESTION "What colour is the square in this picture?"

static int fail(void) {
  fprintf(stderr, "error: %s\n", musespark_last_error());
  return 1;
}

/* Asks and prints; returns 0 on success. Owns nothing: main frees. */
static int ask(const musespark_engine* engine, musespark_request* request, const char* image, const char* question,
               musespark_result** result) {
  musespark_budgets budgets;
  musespark_vote vote;
  int32_t i, count;

  musespark_budgets_init(&budgets);
  budgets.agents = 3;
  budgets.max_thinking_tokens = 8;
  budgets.max_answer_tokens = 4;

  if (musespark_request_add_message(request, "user") != MUSESPARK_STATUS_OK ||
      musespark_request_add_image_file(request, image) != MUSESPARK_STATUS_OK ||
      musespark_request_add_text(request, question) != MUSESPARK_STATUS_OK ||
      musespark_request_set_mode(request, MUSESPARK_MODE_THINKING) != MUSESPARK_STATUS_OK ||
      musespark_request_set_budgets(request, &budgets) != MUSESPARK_STATUS_OK ||
      musespark_request_set_seed(request, 1) != MUSESPARK_STATUS_OK)
    return fail();

  if (musespark_engine_ask(engine, request, NULL, NULL, result) != MUSESPARK_STATUS_OK) return fail();

  printf("answer: %s\n", musespark_result_answer(*result));
  count = musespark_result_vote_count(*result);
  for (i = 0; i < count; ++i) {
    musespark_vote_init(&vote);
    if (musespark_result_vote(*result, i, &vote) != MUSESPARK_STATUS_OK) return fail();
    printf("vote: %s (%d votes, %.1f%%)\n", vote.answer, (int)vote.votes, vote.share * 100.0);
  }
  printf("agents: %d\n", (int)musespark_result_agent_count(*result));
  return 0;
}

int main(int argc, char** argv) {
  musespark_engine* engine = NULL;
  musespark_request* request = NULL;
  musespark_result* result = NULL;
  int rc;

  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL_DIR IMAGE_PATH [QUESTION]\n", argv[0]);
    return 2;
  }

  if (musespark_engine_load(argv[1], NULL, &engine) != MUSESPARK_STATUS_OK) return fail();
  if (musespark_request_init(&request) != MUSESPARK_STATUS_OK) {
    rc = fail();
  } else {
    rc = ask(engine, request, argv[2], argc > 3 ? argv[3] : DEFAULT_QUESTION, &result);
  }

  /* The free functions accept NULL. */
  musespark_result_free(result);
  musespark_request_free(request);
  musespark_engine_free(engine);
  if (fflush(stdout) != 0) return 1;
  return rc;
}
