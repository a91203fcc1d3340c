/*
 * rank: a rank-aware CPU-heavy job for "divide into as many parts as there are nodes". Reads GRIDVM_RANK and
 * GRIDVM_SIZE (defaults 0 and 1). The numbers [2, N) are cut into blocks of 4096 dealt round-robin to the ranks (so
 * every rank gets the same mix of small and large numbers: equal work), and each rank counts the primes in its
 * blocks by trial division and sums them; prints one line "rank R/S blocks B primes=P sum=S". Integrating the
 * results = summing P and S over ranks, which equals the size=1 result (pi(10^6)=78498 for N=10^6).
 * Usage: rank [N]   (default 6000000, ~0.8 s single-rank under node:wasi)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int is_prime(uint32_t n) {
  if (n < 2) return 0;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; d * d <= n; d += 2) if (n % d == 0) return 0;
  return 1;
}

static long env_long(const char *name, long dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  return *end ? dflt : x;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 6000000L;
  long rank = env_long("GRIDVM_RANK", 0), size = env_long("GRIDVM_SIZE", 1);
  if (size < 1 || rank < 0 || rank >= size) {
    fprintf(stderr, "rank: bad GRIDVM_RANK=%ld GRIDVM_SIZE=%ld\n", rank, size);
    return 2;
  }
  if (n < 2) n = 2;
  const uint32_t block = 4096;
  uint64_t count = 0, sum = 0, blocks = 0;
  for (uint64_t lo = 2 + (uint64_t)rank * block; lo < (uint64_t)n; lo += (uint64_t)size * block) {
    uint64_t hi = lo + block < (uint64_t)n ? lo + block : (uint64_t)n;
    for (uint32_t k = (uint32_t)lo; k < hi; k++) if (is_prime(k)) { count++; sum += k; }
    blocks++;
  }
  printf("rank %ld/%ld blocks %llu primes=%llu sum=%llu\n", rank, size, (unsigned long long)blocks, (unsigned long long)count,
         (unsigned long long)sum);
  return 0;
}
