/*
 * malloc_churn: heavy malloc/free/realloc churn through wasi-libc's allocator (dlmalloc), with the pointers kept in
 * data structures: a chained hash table of entries, each entry on a doubly linked LRU list and owning a payload
 * whose bytes are derived from its key and version. Every operation verifies the payload it touches; periodic
 * full verification walks the whole table. Prints checksums periodically (stdout) and a final checksum.
 * Usage: malloc_churn [live_MiB] [ops]   (defaults 6 MiB live payload (peak linear memory stays < 12 MiB, under
 * node:wasi's ~16 MiB limit) and 400000 ops; pass e.g. 48 for tens of MiB of memory).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
  uint32_t key, version, size;
  unsigned char *payload;
  struct entry *chain;          /* hash bucket chain */
  struct entry *prev, *next;    /* LRU list, most recent at head */
};

#define BUCKETS 4096
static struct entry *table[BUCKETS];
static struct entry *lru_head, *lru_tail;
static size_t live_bytes, live_entries;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint32_t next_rand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

static void die(const char *what) { fprintf(stderr, "malloc_churn: %s\n", what); exit(2); }

static unsigned char pattern(uint32_t key, uint32_t version, uint32_t i) {
  return (unsigned char)((key * 131u + version * 7u + i * 13u) ^ (i >> 8));
}

static void fill(struct entry *e, uint32_t from) {
  for (uint32_t i = from; i < e->size; i++) e->payload[i] = pattern(e->key, e->version, i);
}

static void verify(const struct entry *e) {
  for (uint32_t i = 0; i < e->size; i++)
    if (e->payload[i] != pattern(e->key, e->version, i)) {
      fprintf(stderr, "malloc_churn: corrupt payload key=%u at %u\n", e->key, i);
      exit(1);
    }
}

static void lru_unlink(struct entry *e) {
  if (e->prev) e->prev->next = e->next; else lru_head = e->next;
  if (e->next) e->next->prev = e->prev; else lru_tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push(struct entry *e) {
  e->next = lru_head; e->prev = NULL;
  if (lru_head) lru_head->prev = e; else lru_tail = e;
  lru_head = e;
}

static struct entry *lookup(uint32_t key) {
  for (struct entry *e = table[key % BUCKETS]; e; e = e->chain) if (e->key == key) return e;
  return NULL;
}

static void remove_entry(struct entry *e) {
  struct entry **pp = &table[e->key % BUCKETS];
  while (*pp != e) pp = &(*pp)->chain;
  *pp = e->chain;
  lru_unlink(e);
  verify(e);
  live_bytes -= e->size;
  live_entries--;
  free(e->payload);
  free(e);
}

static uint32_t random_size(void) {
  uint32_t r = next_rand();
  switch (r & 7) {
    case 0: case 1: return 8 + (r >> 8) % 64;    /* tiny */
    case 2: case 3: case 4: return 64 + (r >> 8) % 512;
    case 5: case 6: return 512 + (r >> 8) % 2048;
    default: return ((r >> 8) & 15) == 0 ? 16384 + (r >> 8) % 65536 : 2048 + (r >> 8) % 4096; /* some large */
  }
}

static void insert(uint32_t key) {
  struct entry *e = malloc(sizeof *e);
  if (!e) die("out of memory (entry)");
  e->key = key; e->version = 0; e->size = random_size();
  e->payload = malloc(e->size);
  if (!e->payload) die("out of memory (payload)");
  fill(e, 0);
  e->chain = table[key % BUCKETS];
  table[key % BUCKETS] = e;
  lru_push(e);
  live_bytes += e->size;
  live_entries++;
}

static void resize(struct entry *e) {
  verify(e);
  uint32_t old = e->size, size = (next_rand() & 1) ? old + old / 2 + 1 : old / 2 + 1;
  unsigned char *p = realloc(e->payload, size);
  if (!p) die("out of memory (realloc)");
  e->payload = p;
  e->size = size;
  live_bytes = live_bytes - old + size;
  /* realloc must keep the common prefix: check it, then extend with the same version's pattern */
  for (uint32_t i = 0; i < (old < size ? old : size); i++)
    if (p[i] != pattern(e->key, e->version, i)) die("realloc lost data");
  fill(e, old < size ? old : size);
}

static uint64_t table_checksum(void) {
  uint64_t h = 1469598103934665603ULL;
  size_t count = 0;
  for (struct entry *e = lru_head; e; e = e->next) {
    verify(e);
    h = (h ^ e->key) * 1099511628211ULL;
    h = (h ^ e->version) * 1099511628211ULL;
    h = (h ^ e->size) * 1099511628211ULL;
    for (uint32_t i = 0; i < e->size; i += 97) h = (h ^ e->payload[i]) * 1099511628211ULL;
    count++;
  }
  if (count != live_entries) die("LRU list and table disagree");
  return h;
}

int main(int argc, char **argv) {
  long live_mib = argc > 1 ? strtol(argv[1], NULL, 10) : 6;
  long ops = argc > 2 ? strtol(argv[2], NULL, 10) : 400000;
  if (live_mib < 1) live_mib = 1;
  size_t target = (size_t)live_mib << 20;
  printf("malloc_churn: live=%ld MiB ops=%ld\n", live_mib, ops);
  uint32_t next_key = 1;
  for (long op = 1; op <= ops; op++) {
    uint32_t r = next_rand() % 100;
    if (live_bytes < target && r < 55) {
      insert(next_key++);
    } else if (r < 70 && lru_tail) {
      remove_entry(lru_tail);                     /* evict least recently used */
    } else if (r < 80 && live_entries) {
      struct entry *e = lookup(1 + next_rand() % next_key);
      if (e) remove_entry(e);                     /* free from the middle */
    } else if (r < 92) {
      struct entry *e = lookup(1 + next_rand() % next_key);
      if (e) { lru_unlink(e); resize(e); lru_push(e); }
    } else {
      struct entry *e = lookup(1 + next_rand() % next_key);
      if (e) { verify(e); e->version++; fill(e, 0); lru_unlink(e); lru_push(e); }
    }
    if (live_bytes > target + (target >> 2)) remove_entry(lru_tail);
    if (op % (ops / 20 > 0 ? ops / 20 : 1) == 0) {
      printf("op %ld: entries=%zu live=%zu checksum=%016llx\n", op, live_entries, live_bytes,
             (unsigned long long)table_checksum());
      fflush(stdout);
    }
  }
  uint64_t final = table_checksum();
  while (lru_head) remove_entry(lru_head);
  for (int i = 0; i < BUCKETS; i++) if (table[i]) die("table not empty after teardown");
  fprintf(stderr, "malloc_churn: done, %u keys used\n", next_key - 1);
  printf("final checksum %016llx\n", (unsigned long long)final);
  return 0;
}
