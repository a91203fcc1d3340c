/*
 * memtouch: a job whose memory size is set by its first argument, for the checkpoint/restore benchmarks
 * (benchmarks/checkpoint.bench.ts). Allocates MiB of heap, fills every 64-bit word with pseudo-random data (so no
 * page is all zero and page hashing/compression has real work), then runs `steps` steps: each step writes one
 * word into the next 64 KiB page (stepping through all pages, so the pages dirtied between two yields are spread
 * over the whole heap) and then spins `work` iterations of a xorshift loop (a loop header: yields happen there).
 * Dirty pages per yield ~= the VM's slice (default 200k budget units) / (work + 1).
 * Prints "memtouch MiB=... steps=... checksum=..." (deterministic) and exits 0.
 * Usage: memtouch [MiB] [steps] [work]   (defaults 16, 2000, 5000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE 65536u

int main(int argc, char **argv) {
  long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 16;
  long steps = argc > 2 ? strtol(argv[2], NULL, 10) : 2000;
  long work = argc > 3 ? strtol(argv[3], NULL, 10) : 5000;
  if (mib < 1 || steps < 0 || work < 0) {
    fprintf(stderr, "usage: memtouch [MiB >= 1] [steps] [work]\n");
    return 2;
  }
  size_t bytes = (size_t)mib << 20;
  size_t words = bytes / sizeof(uint64_t);
  volatile uint64_t *buf = malloc(bytes);
  if (!buf) {
    fprintf(stderr, "memtouch: cannot allocate %ld MiB\n", mib);
    return 2;
  }
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < words; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    buf[i] = s | 1;
  }
  size_t npages = bytes / PAGE;
  size_t wordsPerPage = PAGE / sizeof(uint64_t);
  size_t page = 0;
  for (long k = 0; k < steps; k++) {
    uint64_t x = s + (uint64_t)k;
    for (long j = 0; j < work; j++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    buf[page * wordsPerPage + ((size_t)k % wordsPerPage)] ^= x;
    page = (page + 97) % npages;
    s = x;
  }
  uint64_t sum = 0;
  for (size_t i = 0; i < words; i++) sum = sum * 31 + buf[i];
  printf("memtouch MiB=%ld steps=%ld checksum=%016llx\n", mib, steps, (unsigned long long)sum);
  return 0;
}
