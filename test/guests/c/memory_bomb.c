/*
 * memory_bomb: mallocs 1 MiB chunks forever, never frees, and touches every page of each chunk (so the memory is
 * really committed). Every 16 MiB it prints "memory_bomb: N MiB" to stderr. Exercises memory limits: the VM should
 * stop it (memory.grow refused -> malloc returns NULL, or a kill). If malloc does return NULL it prints
 * "memory_bomb: malloc failed after N MiB" to stderr and exits 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (1 << 20)

int main(void) {
  unsigned long mib = 0;
  printf("memory_bomb: started\n");
  fflush(stdout);
  for (;;) {
    volatile unsigned char *p = malloc(CHUNK);
    if (!p) {
      fprintf(stderr, "memory_bomb: malloc failed after %lu MiB\n", mib);
      return 2;
    }
    for (size_t i = 0; i < CHUNK; i += 4096) p[i] = (unsigned char)(i ^ mib);
    mib++;
    if (mib % 16 == 0) fprintf(stderr, "memory_bomb: %lu MiB\n", mib);
  }
}
