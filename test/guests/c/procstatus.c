/*
 * procstatus: reads /proc/self/status (a gridvm 'proc' mount at /proc) and prints its Gpid and Node lines, then
 * runs CPU work (argv[1] units, default 400) and prints the Node line again at 4 points, re-reading the same open
 * file (rewind): after a migration the new node shows. At the end it opens /proc/<its gpid>/status by number and
 * prints its Gpid and Node lines ("byid"). Output is deterministic apart from the Gpid/Node values.
 */
// native: none
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show(FILE *f, const char *key, const char *label) {
  char line[256];
  rewind(f);
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      printf("%s %s", label, line);
      return;
    }
  }
  printf("%s %s: missing\n", label, key);
}

int main(int argc, char **argv) {
  long units = argc > 1 ? strtol(argv[1], NULL, 10) : 400;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) {
    perror("open /proc/self/status");
    return 1;
  }
  show(f, "Gpid", "start");
  show(f, "Node", "start");
  uint64_t x = 88172645463325252ull, acc = 0;
  for (int part = 1; part <= 4; part++) {
    for (long i = 0; i < units * 1000L / 4; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      acc += x & 0xffff;
    }
    printf("part %d: acc %llu\n", part, (unsigned long long)acc);
    char label[16];
    snprintf(label, sizeof label, "part %d", part);
    show(f, "Node", label);
  }
  /* the same status by GPID: /proc/<gpid>/status */
  char line[256], path[64];
  long gpid = -1;
  rewind(f);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "Gpid:", 5) == 0) gpid = strtol(line + 5, NULL, 10);
  }
  fclose(f);
  snprintf(path, sizeof path, "/proc/%ld/status", gpid);
  FILE *g = fopen(path, "r");
  if (!g) {
    printf("byid open %s failed\n", path);
    return 1;
  }
  show(g, "Gpid", "byid");
  show(g, "Node", "byid");
  fclose(g);
  return 0;
}
