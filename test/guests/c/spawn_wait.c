/*
 * spawn_wait: grid spawn + wait (sdk/c/gridvm.h). Runs only under gridvm with a grid host.
 * Parent (`spawn_wait [units]`): spawns 3 children of itself (module path = its own argv[0]) as
 * `argv[0] child K units`, K = 1..3, then waits for each by GPID in order and prints "child K: exit C" per child and a
 * total. Child (`spawn_wait child K [units]`): CPU-bound deterministic work (~0.1-0.2 s at the default 20000 units),
 * prints "child K: result R", exits with code K.
 * Output depends neither on GPID values nor on timing.
 */
// native: none
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gridvm.h"

static uint64_t work(long k, long units) {
  uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)k, acc = 0;
  for (long i = 0; i < units * 1000L; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    acc += x % 1000003u;
  }
  return acc;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "child") == 0) {
    long k = strtol(argv[2], NULL, 10);
    long units = argc > 3 ? strtol(argv[3], NULL, 10) : 20000;
    printf("child %ld: result %llu\n", k, (unsigned long long)work(k, units));
    return (int)k;
  }
  const char *units = argc > 1 ? argv[1] : "20000";
  int64_t kids[3];
  for (int k = 1; k <= 3; k++) {
    char kbuf[16];
    snprintf(kbuf, sizeof kbuf, "%d", k);
    char *cargv[] = {argv[0], "child", kbuf, (char *)units, NULL};
    kids[k - 1] = gridvm_spawnv(argv[0], cargv);
    if (kids[k - 1] <= 0) {
      printf("spawn %d failed: %lld\n", k, (long long)kids[k - 1]);
      return 1;
    }
    printf("spawned child %d\n", k);
  }
  int total = 0;
  for (int k = 1; k <= 3; k++) {
    int status = -1;
    int64_t r = gridvm_wait(kids[k - 1], &status);
    if (r != kids[k - 1]) {
      printf("wait %d failed: %lld\n", k, (long long)r);
      return 1;
    }
    printf("child %d: exit %d\n", k, status);
    total += status;
  }
  int64_t none = gridvm_wait(-1, NULL);
  printf("wait for more: %s\n", none == -12 ? "ECHILD" : "unexpected");
  printf("total %d\n", total);
  return 0;
}
