/*
 * recursion: deep and wide recursion where the recursive functions contain no loops, so the only preemption points
 * inside them are at function entry. Built with -fno-optimize-sibling-calls (see the cflags line) so the compiler
 * cannot turn tail/accumulator recursion into loops, and with a 4 MiB shadow stack for the deep phases.
 * Phases: naive fib (millions of calls, shallow), Ackermann(3,n) (depth ~2^(n+3)), a degenerate binary tree built
 * and walked recursively (depth in the thousands, heap + shadow stack), mutual recursion (is_even/is_odd).
 * Usage: recursion [scale] [fibmax]   (default 1 and 35; scale multiplies the tree depth and the mutual-recursion
 * depth; fib(n) is printed for n = 20, 23, ... up to fibmax: each +3 makes that phase ~4x longer, 41 runs ~3 s)
 */
// cflags: -fno-optimize-sibling-calls
// wasm-ldflags: -Wl,-z,stack-size=4194304
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static uint32_t fib(uint32_t n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__attribute__((noinline)) static uint32_t ackermann(uint32_t m, uint32_t n) {
  if (m == 0) return n + 1;
  if (n == 0) return ackermann(m - 1, 1);
  return ackermann(m - 1, ackermann(m, n - 1));
}

struct tree { struct tree *left, *right; uint32_t value; };

/* Builds a lopsided tree: a spine of `depth` nodes to the left, each with a small right subtree. */
__attribute__((noinline)) static struct tree *build(uint32_t depth, uint32_t seed) {
  if (depth == 0) return NULL;
  struct tree *t = malloc(sizeof *t);
  if (!t) { fprintf(stderr, "recursion: out of memory\n"); exit(2); }
  t->value = seed * 2654435761u + depth;
  t->left = build(depth - 1, seed + 1);
  t->right = (depth % 3 == 0 && depth > 8) ? build(depth % 8, seed ^ depth) : NULL; /* small, no spine */
  return t;
}

__attribute__((noinline)) static uint64_t walk(const struct tree *t, uint32_t level) {
  if (!t) return level;
  return (t->value ^ level) + 31 * walk(t->left, level + 1) + walk(t->right, level + 1);
}

__attribute__((noinline)) static uint32_t tree_depth(const struct tree *t) {
  if (!t) return 0;
  uint32_t l = tree_depth(t->left), r = tree_depth(t->right);
  return 1 + (l > r ? l : r);
}

__attribute__((noinline)) static void destroy(struct tree *t) {
  if (!t) return;
  destroy(t->left);
  destroy(t->right);
  free(t);
}

static int is_odd(uint32_t n);
__attribute__((noinline)) static int is_even(uint32_t n) { return n == 0 ? 1 : is_odd(n - 1); }
__attribute__((noinline)) static int is_odd(uint32_t n) { return n == 0 ? 0 : is_even(n - 1); }

int main(int argc, char **argv) {
  long scale = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
  if (scale < 1) scale = 1;
  uint32_t fibmax = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 35;
  printf("recursion: scale=%ld\n", scale);

  for (uint32_t n = 20; n <= fibmax; n += 3) {
    printf("fib(%u) = %u\n", n, fib(n));
    fflush(stdout);
  }
  for (uint32_t n = 4; n <= 9; n++) {
    printf("ackermann(3, %u) = %u\n", n, ackermann(3, n));
    fflush(stdout);
  }
  uint64_t total = 0;
  for (uint32_t round = 0; round < 8; round++) {
    uint32_t depth = (uint32_t)(2000 + 500 * round) * (uint32_t)scale;
    struct tree *t = build(depth, round);
    uint64_t w = walk(t, 0);
    uint32_t d = tree_depth(t);
    destroy(t);
    total = total * 1000003u + w;
    printf("tree round %u: depth=%u walk=%016llx\n", round, d, (unsigned long long)w);
    fflush(stdout);
  }
  uint32_t mutual = 5001 * (uint32_t)scale;
  printf("is_even(%u) = %d, is_odd(%u) = %d\n", mutual, is_even(mutual), mutual + 1, is_odd(mutual + 1));
  fprintf(stderr, "recursion: done\n");
  printf("final checksum %016llx\n", (unsigned long long)total);
  return 0;
}
