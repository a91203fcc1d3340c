/*
 * fileio: file-system syscalls on the preopened directory given as argv[1] (default "/data").
 * Opens data.bin and notes.txt and keeps both open across a long computation (~0.5 s by default), writing to them between
 * steps, so a checkpoint lands with open fds at non-zero offsets. Then: lseek + read back and verify, pwrite/pread
 * in the middle, append through O_APPEND (log.txt, reopened twice), rename notes.txt -> renamed.txt, mkdir sub/ with
 * files created out of order, readdir (names sorted before printing), stat sizes, unlink a scratch file, ftruncate,
 * and FNV checksums of every final file. Output never contains the directory path; the final files are
 * deterministic (data.bin, renamed.txt, log.txt, sub/alpha.txt, sub/beta.txt, sub/gamma.txt).
 * Usage: fileio [dir] [work]   (work scales the computation; default 300, ~0.5 s under node:wasi)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir;

static const char *path(const char *name) {
  static char buf[4][1024];
  static int which;
  char *p = buf[which++ & 3];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static void die(const char *what, const char *name) {
  fprintf(stderr, "fileio: %s %s: %s\n", what, name, strerror(errno));
  exit(1);
}

static void write_all(int fd, const void *buf, size_t n, const char *name) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) die("write", name);
    p += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, void *buf, size_t n, const char *name) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) die("read", name);
    p += r;
    n -= (size_t)r;
  }
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static uint64_t file_checksum(const char *name, off_t *size_out) {
  int fd = open(path(name), O_RDONLY);
  if (fd < 0) die("open", name);
  unsigned char buf[1000];
  uint64_t h = 1469598103934665603ULL;
  off_t size = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) { h = fnv(h, buf, (size_t)r); size += r; }
  if (r < 0) die("read", name);
  close(fd);
  *size_out = size;
  return h;
}

static void append_line(const char *name, const char *line) {
  int fd = open(path(name), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) die("open(append)", name);
  write_all(fd, line, strlen(line), name);
  close(fd);
}

static void write_file(const char *name, const char *text) {
  int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("create", name);
  write_all(fd, text, strlen(text), name);
  close(fd);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  dir = argc > 1 ? argv[1] : "/data";
  long work = argc > 2 ? strtol(argv[2], NULL, 10) : 300;
  if (work < 1) work = 1;
  printf("fileio: work=%ld\n", work);

  /* clean leftovers of an earlier run so the result only depends on this run */
  unlink(path("renamed.txt"));
  unlink(path("scratch.tmp"));

  int data = open(path("data.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (data < 0) die("create", "data.bin");
  int notes = open(path("notes.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (notes < 0) die("create", "notes.txt");
  write_file("log.txt", "log start\n");

  /* long computation with both files open; write a record after every step */
  uint64_t x = 88172645463325252ULL;
  unsigned char block[256];
  for (long step = 0; step < 40; step++) {
    for (long k = 0; k < work * 25000; k++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
    for (int i = 0; i < (int)sizeof block; i++) block[i] = (unsigned char)(x >> (i % 56)) ^ (unsigned char)i;
    write_all(data, block, sizeof block, "data.bin");
    char line[128];
    int len = snprintf(line, sizeof line, "step %ld value %016llx\n", step, (unsigned long long)x);
    write_all(notes, line, (size_t)len, "notes.txt");
    if (step % 10 == 9) {
      off_t off = lseek(data, 0, SEEK_CUR);
      printf("step %ld: data.bin offset=%lld\n", step, (long long)off);
      fflush(stdout);
      snprintf(line, sizeof line, "checkpointable step %ld\n", step);
      append_line("log.txt", line);
    }
  }

  /* seek back and read everything, check record 17 regenerates; then patch the middle with pwrite */
  off_t end = lseek(data, 0, SEEK_END);
  if (lseek(data, 0, SEEK_SET) != 0) die("lseek", "data.bin");
  static unsigned char all[40 * 256];
  read_all(data, all, sizeof all, "data.bin");
  printf("data.bin size=%lld checksum=%016llx\n", (long long)end,
         (unsigned long long)fnv(1469598103934665603ULL, all, sizeof all));
  const char patch[] = "PATCHED-IN-THE-MIDDLE";
  if (pwrite(data, patch, sizeof patch - 1, 5000) != (ssize_t)(sizeof patch - 1)) die("pwrite", "data.bin");
  char back[sizeof patch] = {0};
  if (pread(data, back, sizeof patch - 1, 5000) != (ssize_t)(sizeof patch - 1)) die("pread", "data.bin");
  printf("pread after pwrite: %s\n", back);
  printf("offset after pread: %lld\n", (long long)lseek(data, 0, SEEK_CUR));
  if (lseek(data, -100, SEEK_END) != end - 100) die("lseek(SEEK_END)", "data.bin");
  unsigned char tail[100];
  read_all(data, tail, sizeof tail, "data.bin");
  printf("tail checksum=%016llx\n", (unsigned long long)fnv(1469598103934665603ULL, tail, sizeof tail));
  close(data);
  close(notes);

  /* append, rename */
  append_line("log.txt", "appended after close\n");
  if (rename(path("notes.txt"), path("renamed.txt")) != 0) die("rename", "notes.txt");
  struct stat st;
  printf("notes.txt after rename: %s\n", stat(path("notes.txt"), &st) == 0 ? "exists" : "gone");
  append_line("renamed.txt", "appended to renamed file\n");

  /* scratch file: create, truncate, unlink */
  write_file("scratch.tmp", "this file will be truncated and removed\n");
  int scratch = open(path("scratch.tmp"), O_RDWR);
  if (scratch < 0 || ftruncate(scratch, 4) != 0) die("ftruncate", "scratch.tmp");
  if (fstat(scratch, &st) != 0) die("fstat", "scratch.tmp");
  printf("scratch.tmp size after ftruncate: %lld\n", (long long)st.st_size);
  close(scratch);
  if (unlink(path("scratch.tmp")) != 0) die("unlink", "scratch.tmp");

  /* subdirectory: files created out of order, listed sorted */
  if (mkdir(path("sub"), 0755) != 0 && errno != EEXIST) die("mkdir", "sub");
  write_file("sub/gamma.txt", "gamma\n");
  write_file("sub/alpha.txt", "alpha alpha\n");
  write_file("sub/beta.txt", "beta beta beta\n");
  DIR *d = opendir(path("sub"));
  if (!d) die("opendir", "sub");
  char *names[64];
  int count = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL && count < 64) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    names[count++] = strdup(ent->d_name);
  }
  closedir(d);
  qsort(names, (size_t)count, sizeof names[0], cmp_str);
  printf("sub/ has %d entries:", count);
  for (int i = 0; i < count; i++) printf(" %s", names[i]);
  printf("\n");
  for (int i = 0; i < count; i++) free(names[i]);

  /* sizes and checksums of every final file */
  static const char *const finals[] = {"data.bin", "log.txt", "renamed.txt", "sub/alpha.txt", "sub/beta.txt",
                                       "sub/gamma.txt"};
  for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
    off_t size;
    uint64_t h = file_checksum(finals[i], &size);
    if (stat(path(finals[i]), &st) != 0) die("stat", finals[i]);
    printf("%s: size=%lld stat_size=%lld regular=%d checksum=%016llx\n", finals[i], (long long)size,
           (long long)st.st_size, S_ISREG(st.st_mode) ? 1 : 0, (unsigned long long)h);
  }
  if (stat(path("sub"), &st) != 0) die("stat", "sub");
  printf("sub is a directory: %d\n", S_ISDIR(st.st_mode) ? 1 : 0);
  fprintf(stderr, "fileio: done\n");
  return 0;
}
