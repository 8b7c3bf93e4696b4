/* Links the installed musespark and prints its version. */
#include <stdio.h>

#include <musespark/musespark.h>

int main(void) {
  if (musespark_abi_version() != MUSESPARK_ABI_VERSION) {
    fprintf(stderr, "ABI %u, compiled against %d\n", (unsigned)musespark_abi_version(), MUSESPARK_ABI_VERSION);
    return 1;
  }
  printf("musespark %s\n", musespark_version_string());
  return 0;
}
