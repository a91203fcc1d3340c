/*
 * trap: calls level_one -> level_two -> level_three, which executes __builtin_trap() (wasm `unreachable`).
 * The functions are noinline and do work after the call, so all three frames exist at the trap; clang/wasm-ld keep
 * the "name" section by default (no -s), so a runtime can report the guest stack with these names.
 * Prints "trap: about to trap" to stdout first. Exercises trap reporting (why, where).
 */
#include <stdio.h>

volatile int sink;

__attribute__((noinline)) void level_three(int x) {
  sink = x;
  if (sink >= 0) __builtin_trap();
  sink = x + 1;
}

__attribute__((noinline)) void level_two(int x) {
  level_three(x * 2);
  sink += 2;
}

__attribute__((noinline)) void level_one(int x) {
  level_two(x + 1);
  sink += 1;
}

int main(void) {
  printf("trap: about to trap\n");
  fflush(stdout);
  level_one(20);
  printf("trap: not reached\n");
  return 0;
}
