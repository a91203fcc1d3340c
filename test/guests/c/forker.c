/*
 * forker: remote fork (sdk/c/gridvm.h). Runs only under gridvm with a grid host.
 * Fills an array in a loop and keeps a running checksum, writes a line to an in-memory file if argv[1] names a
 * directory, then forks. The child (fork() == 0) continues the computation differently and exits with a code
 * derived from the state (1..100); the parent continues its own way, waits for the child, and prints the child's
 * exit code and its own result. Deterministic.
 */
// native: none
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "gridvm.h"

#define N 50000

static uint32_t data[N];

static uint64_t mix(uint64_t h, uint32_t v) { return (h ^ v) * 0x100000001b3ull; }

int main(int argc, char **argv) {
  uint64_t sum = 0xcbf29ce484222325ull;
  for (int i = 0; i < N; i++) {
    data[i] = (uint32_t)(i * 2654435761u) ^ (uint32_t)(sum >> 17);
    sum = mix(sum, data[i]);
  }
  FILE *f = NULL;
  if (argc > 1) {
    char path[256];
    snprintf(path, sizeof path, "%s/forker.txt", argv[1]);
    f = fopen(path, "w+");
    if (f) fprintf(f, "before fork %016llx\n", (unsigned long long)sum);
  }
  printf("before fork: sum %016llx\n", (unsigned long long)sum);
  fflush(stdout);
  int64_t pid = gridvm_fork();
  if (pid < 0) {
    printf("fork failed: %lld\n", (long long)pid);
    return 1;
  }
  if (pid == 0) {
    for (int i = 0; i < N; i++) sum = mix(sum, data[N - 1 - i] + 7u);
    int code = (int)(sum % 100u) + 1;
    if (f) {
      fprintf(f, "child %016llx\n", (unsigned long long)sum);
      fclose(f);
    }
    printf("child: parent is %s, sum %016llx, exiting with %d\n", gridvm_parent() > 0 ? "set" : "unset",
           (unsigned long long)sum, code);
    return code;
  }
  for (int i = 0; i < N; i++) sum = mix(sum, data[i] * 3u);
  int status = -1;
  int64_t r = gridvm_wait(pid, &status);
  if (r != pid) {
    printf("wait failed: %lld\n", (long long)r);
    return 1;
  }
  if (f) {
    fprintf(f, "parent %016llx\n", (unsigned long long)sum);
    fclose(f);
  }
  printf("parent: child exited with %d, own sum %016llx\n", status, (unsigned long long)sum);
  return 0;
}
