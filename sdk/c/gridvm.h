/*
 * gridvm.h: grid system calls for C jobs running under gridvm (wasm32-wasi).
 *
 * The raw calls are imports from the "gridvm" module (the syscall table is kernel/abi/table.ts). GPIDs are
 * grid-wide process ids (int64_t, > 0). Every call that can fail returns a negative errno (wasi-libc's values,
 * e.g. -ENOSYS when the job runs without a grid host, -ECHILD from wait when there is no such child).
 *
 * spawn, fork and wait BLOCK: the job is suspended at the call (its whole state captured), and continues when the
 * coordinator answers; meanwhile it may be moved to another machine. From the job's point of view they are plain
 * function calls.
 *
 *   int64_t c = gridvm_spawnv("/jobs/worker.wasm", (char *const[]){"worker", "7", NULL});
 *   int st;
 *   if (c > 0 && gridvm_wait(c, &st) == c) printf("worker exited with %d\n", st);
 *
 * Programs using this header run only under gridvm (there is no native implementation).
 */
#ifndef GRIDVM_H
#define GRIDVM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRIDVM_IMPORT(name) __attribute__((import_module("gridvm"), import_name(name)))

/* Start a child process from the module at `path` (interpreted by the coordinator) with `argv` as NUL-separated
 * strings (argv[0] included). Returns the child's GPID or a negative errno. Blocks. */
GRIDVM_IMPORT("spawn") int64_t __gridvm_spawn(const char *path, size_t path_len, const char *argv, size_t argv_len);
/* Remote fork: 0 in the child, the child's GPID in the parent, or a negative errno. Blocks. */
GRIDVM_IMPORT("fork") int64_t __gridvm_fork(void);
/* Wait for child `gpid` (-1: any child) to exit; its exit code is stored at *status. Returns the child's GPID or a
 * negative errno (-ECHILD: no such child). Blocks. */
GRIDVM_IMPORT("wait") int64_t __gridvm_wait(int64_t gpid, int32_t *status);
/* This process's GPID (1 without a grid host). */
GRIDVM_IMPORT("gpid") int64_t __gridvm_gpid(void);
/* The parent's GPID, 0 if none. */
GRIDVM_IMPORT("parent") int64_t __gridvm_parent(void);
/* Rank in the process group (0 without a grid host), and the group's size (1). */
GRIDVM_IMPORT("rank") int32_t __gridvm_rank(void);
GRIDVM_IMPORT("size") int32_t __gridvm_size(void);

#undef GRIDVM_IMPORT

/* Spawn `path` with the NULL-terminated `argv` (argv[0] included, as for execv). Returns the child's GPID or a
 * negative errno (-ENOMEM if the argument block cannot be allocated). */
static inline int64_t gridvm_spawnv(const char *path, char *const argv[]) {
  size_t len = 0;
  for (size_t i = 0; argv && argv[i]; i++) len += strlen(argv[i]) + 1;
  char *buf = (char *)malloc(len ? len : 1);
  if (!buf) return -48; /* ENOMEM in wasi-libc */
  size_t at = 0;
  for (size_t i = 0; argv && argv[i]; i++) {
    size_t n = strlen(argv[i]) + 1;
    memcpy(buf + at, argv[i], n);
    at += n;
  }
  int64_t r = __gridvm_spawn(path, strlen(path), buf, len);
  free(buf);
  return r;
}

/* Remote fork: 0 in the child, the child's GPID in the parent, a negative errno on failure. */
static inline int64_t gridvm_fork(void) { return __gridvm_fork(); }

/* Wait for child `gpid` (-1: any); stores its exit code in *status (if not NULL). Returns its GPID or -errno. */
static inline int64_t gridvm_wait(int64_t gpid, int *status) {
  int32_t st = 0;
  int64_t r = __gridvm_wait(gpid, &st);
  if (r > 0 && status) *status = (int)st;
  return r;
}

static inline int64_t gridvm_gpid(void) { return __gridvm_gpid(); }
static inline int64_t gridvm_parent(void) { return __gridvm_parent(); }
static inline int gridvm_rank(void) { return (int)__gridvm_rank(); }
static inline int gridvm_size(void) { return (int)__gridvm_size(); }

#ifdef __cplusplus
}
#endif

#endif /* GRIDVM_H */
