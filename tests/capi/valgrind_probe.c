/*
 * Loads libmusespark and, through it, every library libtorch pulls in, and
 * calls into it once. tests/tools/memcheck.py runs this under valgrind first:
 * when valgrind cannot execute the start-up code of those libraries on this
 * CPU (valgrind 3.19 stops at `rdtscp` in libhwy on AMD Zen 4), the memory
 * check is reported as skipped instead of failing on a tool limitation.
 */
#include <stdio.h>

#include <musespark/musespark.h>

int main(void) {
  musespark_engine_params params;
  musespark_engine_params_init(&params);
  printf("musespark %s, C ABI %u\n", musespark_version_string(), (unsigned)musespark_abi_version());
  return musespark_abi_version() > 0 ? 0 : 1;
}
