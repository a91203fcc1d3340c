/*
 * clocks_random: checks the clock and random syscalls without printing any time or random value, so its output is
 * deterministic: clock_gettime(MONOTONIC) never goes backwards and advances across work; REALTIME is after
 * 2020-01-01; clock_getres works for both clocks (0 < res <= 1 s); time() and gettimeofday() agree with REALTIME;
 * nanosleep(10 ms) really sleeps >= 10 ms (monotonic); getentropy and arc4random give non-constant bytes.
 * Prints "ok <check>" or "FAIL <check>" per check; exits 0 if all pass, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h> /* getentropy (wasi-libc: random_get); this wasi-libc has no getrandom() */
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>

static int failures;

static void check(int ok, const char *name) {
  printf("%s %s\n", ok ? "ok" : "FAIL", name);
  if (!ok) failures++;
}

static int64_t ns(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) return -1;
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int all_same(const unsigned char *p, size_t n) {
  for (size_t i = 1; i < n; i++) if (p[i] != p[0]) return 0;
  return 1;
}

int main(void) {
  /* monotonic */
  int64_t prev = ns(CLOCK_MONOTONIC), first = prev;
  int monotonic_ok = prev >= 0;
  volatile uint64_t spin = 0;
  for (int i = 0; i < 2000; i++) {
    for (int k = 0; k < 1000; k++) spin += k;
    int64_t now = ns(CLOCK_MONOTONIC);
    if (now < prev) monotonic_ok = 0;
    prev = now;
  }
  check(monotonic_ok, "clock_gettime monotonic never decreases");
  check(prev > first && spin > 0, "clock_gettime monotonic advances");

  /* realtime */
  int64_t rt = ns(CLOCK_REALTIME);
  check(rt > 1577836800LL * 1000000000LL, "clock_gettime realtime is after 2020-01-01");
  check(rt < 4102444800LL * 1000000000LL, "clock_gettime realtime is before 2100-01-01");
  time_t t = time(NULL);
  check(t >= rt / 1000000000LL - 5 && t <= rt / 1000000000LL + 5, "time() agrees with realtime");
  struct timeval tv;
  check(gettimeofday(&tv, NULL) == 0 && tv.tv_sec >= rt / 1000000000LL - 5 && tv.tv_sec <= rt / 1000000000LL + 5,
        "gettimeofday agrees with realtime");

  /* resolution */
  struct timespec res;
  check(clock_getres(CLOCK_MONOTONIC, &res) == 0 && (res.tv_sec > 0 || res.tv_nsec > 0) &&
            (int64_t)res.tv_sec * 1000000000LL + res.tv_nsec <= 1000000000LL,
        "clock_getres monotonic");
  check(clock_getres(CLOCK_REALTIME, &res) == 0 && (res.tv_sec > 0 || res.tv_nsec > 0) &&
            (int64_t)res.tv_sec * 1000000000LL + res.tv_nsec <= 1000000000LL,
        "clock_getres realtime");

  /* sleep */
  int64_t before = ns(CLOCK_MONOTONIC);
  struct timespec req = {0, 10 * 1000000L};
  int rc = nanosleep(&req, NULL);
  int64_t slept = ns(CLOCK_MONOTONIC) - before;
  check(rc == 0, "nanosleep returns 0");
  check(slept >= 10 * 1000000LL, "nanosleep 10ms sleeps at least 10ms");
  check(slept < 5000 * 1000000LL, "nanosleep 10ms returns within 5s");
  before = ns(CLOCK_MONOTONIC);
  usleep(5000);
  check(ns(CLOCK_MONOTONIC) - before >= 5 * 1000000LL, "usleep 5ms sleeps at least 5ms");

  /* random */
  unsigned char a[64], b[256];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  check(getentropy(a, sizeof a) == 0, "getentropy returns 0");
  check(getentropy(b, sizeof a) == 0, "getentropy second call returns 0");
  check(!all_same(a, sizeof a), "getentropy bytes are not constant");
  check(memcmp(a, b, sizeof a) != 0, "getentropy calls differ");
  check(getentropy(b, 1) == 0 && getentropy(b, 256) == 0, "getentropy accepts 1 and 256 bytes");
  uint32_t r[8];
  int distinct = 0;
  for (int i = 0; i < 8; i++) r[i] = arc4random();
  for (int i = 1; i < 8; i++) if (r[i] != r[0]) distinct = 1;
  check(distinct, "arc4random values are not constant");
  uint32_t u = arc4random_uniform(10);
  check(u < 10, "arc4random_uniform in range");

  printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
