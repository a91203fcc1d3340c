/*
 * statics: state a second job would see if an instance were reused without being reset. It bumps a zero-initialised
 * counter and an initialised one, rewrites an initialised string, keeps a heap pointer in a static, and prints all of
 * them (and where malloc puts its blocks) first: every fresh run prints the same. Arguments: "grow" mallocs 4 MiB
 * (the memory grows past its initial size), "exit N" ends through exit(N) (proc_exit), anything else is echoed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int counter;
static int seeded = 42;
static char text[] = "pristine";
static char *kept;
/* where the large block is kept: volatile, so the compiler cannot drop the allocation */
static char *volatile big;

int main(int argc, char **argv) {
  counter++;
  seeded++;
  printf("counter=%d seeded=%d text=%s kept=%s\n", counter, seeded, text, kept ? kept : "(null)");
  strcpy(text, "dirtied!");
  kept = malloc(64);
  strcpy(kept, "from an earlier run");
  char *small = malloc(1000);
  printf("malloc: %lu bytes apart\n", (unsigned long)(small - kept));
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "grow") == 0) {
      big = malloc(4 << 20);
      memset(big, 7, 4 << 20);
      printf("grew: %d\n", big[12345]);
    } else if (strcmp(argv[i], "exit") == 0 && i + 1 < argc) {
      fflush(stdout);
      exit(atoi(argv[i + 1]));
    } else {
      printf("arg %s\n", argv[i]);
    }
  }
  return 0;
}
