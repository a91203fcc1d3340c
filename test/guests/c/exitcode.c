/*
 * exitcode: writes to stdout and to stderr (interleaved, flushed) and exits with status 3 through exit(),
 * i.e. proc_exit(3). Exercises exit-status propagation and separate stdout/stderr capture.
 */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  printf("exitcode: to stdout 1\n");
  fflush(stdout);
  fprintf(stderr, "exitcode: to stderr 1\n");
  printf("exitcode: to stdout 2\n");
  fflush(stdout);
  fprintf(stderr, "exitcode: exiting with 3\n");
  exit(3);
}
