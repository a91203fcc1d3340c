/*
 * stdin_echo: reads all of stdin in fixed 4096-byte chunks (fread, so chunking does not depend on how the host
 * delivers bytes), uppercases ASCII, prefixes each line with its number, and keeps a running FNV checksum. Between
 * chunks it does some CPU work, so a checkpoint can land between reads. Per-chunk summaries go to stderr, the
 * transformed text to stdout, totals at the end. Exercises fd_read on stdin (incl. EOF), buffered stdio.
 */
#include <stdint.h>
#include <stdio.h>

int main(void) {
  static unsigned char buf[4096];
  uint64_t sum = 1469598103934665603ULL, lines = 0, bytes = 0, chunks = 0;
  int at_line_start = 1;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
    chunks++;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = buf[i];
      if (at_line_start) { printf("%6llu | ", (unsigned long long)(lines + 1)); at_line_start = 0; }
      if (c >= 'a' && c <= 'z') c -= 32;
      putchar(c);
      if (c == '\n') { lines++; at_line_start = 1; }
      sum = (sum ^ c) * 1099511628211ULL;
    }
    bytes += n;
    /* CPU work between chunks: a short mixing loop over the checksum */
    uint64_t x = sum;
    for (int k = 0; k < 200000; k++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    fprintf(stderr, "chunk %llu: %zu bytes, mix=%016llx\n", (unsigned long long)chunks, n, (unsigned long long)x);
  }
  if (!at_line_start) { putchar('\n'); lines++; }
  if (ferror(stdin)) { fprintf(stderr, "stdin_echo: read error\n"); return 1; }
  printf("lines=%llu bytes=%llu chunks=%llu checksum=%016llx\n", (unsigned long long)lines,
         (unsigned long long)bytes, (unsigned long long)chunks, (unsigned long long)sum);
  return 0;
}
