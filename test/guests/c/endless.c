/*
 * endless: prints one line ("endless: started") and then spins forever on a volatile counter with no syscalls at
 * all. Exercises preemption of a job that never calls the kernel (CPU-time limits, kill, checkpoint of a hot loop).
 */
#include <stdio.h>

static volatile unsigned long long counter;

int main(void) {
  printf("endless: started\n");
  fflush(stdout);
  for (;;) counter++;
}
