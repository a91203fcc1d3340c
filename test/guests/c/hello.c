/*
 * hello: the smallest useful job. Prints a greeting, argc/argv (one per line) and a fixed set of environment
 * variables (printed as "<unset>" when missing), then exits 0. Exercises args_get, environ_get, fd_write.
 */
#include <stdio.h>
#include <stdlib.h>

static const char *const vars[] = {"GRIDVM_RANK", "GRIDVM_SIZE", "GRIDVM_JOB", "HELLO_NAME", "HOME"};

int main(int argc, char **argv) {
  printf("hello from gridvm\n");
  printf("argc=%d\n", argc);
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    printf("env %s=%s\n", vars[i], v ? v : "<unset>");
  }
  return 0;
}
