/*
 * Batched UDP for radiod's DNS server. Node's dgram costs a system call, a
 * Buffer, an rinfo object with an address string and a send request per
 * datagram; this addon reads up to BATCH datagrams with one recvmmsg(2),
 * hands them to JavaScript in one call through ArrayBuffers shared with it,
 * and sends the answers JavaScript wrote with one sendmmsg(2).
 *
 * One socket per call to open(): bound with SO_REUSEPORT, like every
 * worker's dgram socket was, polled on the calling thread's libuv loop
 * (worker threads included; there is no global state). The socket closes
 * on close(), when its handle is collected, or when the thread's
 * environment is torn down (an async cleanup hook), whichever comes first.
 *
 * Shared buffers, per socket:
 *   in     BATCH slots of SLOT bytes: the datagrams received
 *   lens   BATCH uint32: each datagram's length (0 when it did not fit a slot)
 *   addrs  BATCH slots of ADDR bytes: each sender's sockaddr (in or in6)
 *   out    OUT_BYTES: answers, packed by JavaScript
 *   meta   BATCH x (offset, length, sender slot) uint32: what send() sends
 *
 * Answers and rate limiting. Every socket belongs to a context (context()),
 * one per DNS server of a thread, which keeps:
 *   - the answers JavaScript taught it (learn()): for a question it can read
 *     in full (one IN question, an uncompressed name, at most an OPT record
 *     of EDNS version 0), the header bits, the record bytes in rotations and
 *     the truncated form. A datagram whose question is known is answered
 *     here and never reaches JavaScript; any other is left for JavaScript,
 *     which answers it and may teach the answer. The answers are forgotten
 *     whenever the snapshot's sequence word (shared memory) moves, so none
 *     outlives the zone it was made from. A bounded table, 4-way set
 *     associative: a way that was asked since it was last passed over keeps
 *     its place, so a flood of random names cannot push out the names asked.
 *   - response rate limiting for every answer sent through this socket, the
 *     ones made here and the ones JavaScript made (send()): the same rules as
 *     src/dns/rrl.ts (tokens per client /24 or /56, every slip-th limited
 *     answer sent truncated, a bounded table forgotten bit by bit, one shared
 *     bucket once it is full).
 *   - counters and a latency histogram in a Float64Array JavaScript drains.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 4096
#define ADDR 28
#define OUT_BYTES (1 << 20)
/* Batches read per readiness event before other handles get their turn. */
#define ROUNDS 16

enum { B_IN, B_LENS, B_ADDRS, B_OUT, B_META, B_COUNT };

/* Longest answer made here; a longer one is left to JavaScript. */
#define ANSWER_MAX 2048
/* Answers kept: SETS sets of WAYS ways. */
#define SETS 4096
#define WAYS 4
#define ROT_MAX 8
/* Key: the name on the wire in lower case, the type, the EDNS flag. */
#define KEY_MAX (255 + 3)

/* The context's counters (Float64Array words), drained by JavaScript. */
enum { C_QUERIES, C_NXDOMAIN, C_REFUSED, C_TRUNCATED, C_RRL_DROPPED, C_RRL_SLIPPED, C_NATIVE, C_LAT = 16 };
/*
 * Latency of a batch answered here (from its arrival to sendmmsg's return),
 * µs: values below 128 each have a word; above, 64 words per power of two
 * (about 1.5% wide), up to 2^23 µs.
 */
#define LAT_WORDS (128 + 16 * 64)
#define STAT_WORDS (C_LAT + LAT_WORDS)

/* Same rules as src/dns/rrl.ts. */
#define QUIET_MS 2000
#define SWEEP_EVERY_MS 50

typedef struct {
  uint64_t key; /* 0: empty */
  double tokens;
  uint64_t at;
  uint32_t dropped;
} bucket_t;

typedef struct {
  double rate;
  uint32_t slip, max, step;
  bucket_t *t;
  uint32_t mask, size, cursor;
  bucket_t overflow;
  uint64_t last_step;
} rrl_t;

typedef struct {
  uint16_t keylen;
  uint8_t hit;
  uint16_t flags;
  uint16_t counts[3], tcounts[3];
  /*
   * The next rotation, per answer as in answers.ts (a shared turn falls
   * into step with a repeating query pattern). It starts where JavaScript's
   * answer stood when it was taught: starting at 0 each time the table is
   * emptied (every snapshot, about once a second) would hand out the first
   * rotation most.
   */
  uint32_t nrot, turn;
  uint32_t rot_off[ROT_MAX], rot_len[ROT_MAX];
  uint32_t trunc_off, trunc_len;
  unsigned char key[KEY_MAX];
  unsigned char data[];
} entry_t;

typedef struct {
  int refs; /* the JavaScript handle, and each socket opened on it */
  int32_t *seq;
  int32_t known_seq;
  napi_ref seq_ref, stats_ref;
  double *stats;
  entry_t *cache[SETS * WAYS];
  rrl_t rrl;
} ctx_t;

typedef struct {
  int fd;
  ctx_t *ctx;
  napi_ref ctx_ref;
  unsigned char *answers; /* BATCH x ANSWER_MAX: answers made here */
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_ref bufs[B_COUNT];
  unsigned char *in;
  uint32_t *lens;
  unsigned char *addrs;
  unsigned char *out;
  uint32_t *meta;
  napi_async_cleanup_hook_handle hook;
  int closing;      /* close started: fd closed, poll stopping */
  int poll_closed;  /* uv_close finished */
  int finalized;    /* the JavaScript handle was collected */
} sock_t;


/* ---- the context: answers learned, rate limiting, counters ---- */

static void cache_clear(ctx_t *c) {
  for (int i = 0; i < SETS * WAYS; i++) {
    free(c->cache[i]);
    c->cache[i] = NULL;
  }
}

static void ctx_unref(ctx_t *c) {
  if (--c->refs > 0) return;
  cache_clear(c);
  free(c->rrl.t);
  free(c);
}

/* The answers are the zone's as of the sequence word: forgotten when it moves. */
static void check_seq(ctx_t *c) {
  int32_t seq = __atomic_load_n(c->seq, __ATOMIC_SEQ_CST);
  if (seq == c->known_seq) return;
  cache_clear(c);
  c->known_seq = seq;
}

static uint32_t fnv(const unsigned char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

/*
 * A query this code answers: header QR=0, opcode 0, one question, no answer
 * or authority records, no additional record or one OPT at the root of
 * EDNS version 0; the name uncompressed, class IN. Fills the key (the name
 * in lower case, the type, the EDNS flag) and the question's end. Anything
 * else is JavaScript's, which says precisely what is wrong with it.
 */
typedef struct {
  unsigned char key[KEY_MAX];
  uint16_t keylen;
  uint32_t qend;
  int edns;
  uint32_t udp_size;
} question_t;

static int read_question(const unsigned char *m, uint32_t len, question_t *q) {
  if (len < 17) return 0;
  uint16_t flags = (uint16_t)(m[2] << 8 | m[3]);
  if (flags & 0xf800) return 0; /* a response, or not a standard query */
  if (m[4] != 0 || m[5] != 1 || m[6] || m[7] || m[8] || m[9] || m[10] || m[11] > 1) return 0;
  uint32_t off = 12, k = 0;
  for (;;) {
    if (off >= len) return 0;
    uint8_t l = m[off];
    if (l == 0) break;
    if (l > 63 || off + 1 + l > len || off + 1 + l - 12 > 255) return 0;
    q->key[k++] = l;
    for (uint32_t i = off + 1; i < off + 1 + l; i++) {
      unsigned char ch = m[i];
      q->key[k++] = (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
    }
    off += 1 + l;
  }
  off++; /* the root label */
  if (off + 4 > len || m[off + 2] != 0 || m[off + 3] != 1) return 0;
  q->key[k++] = m[off];
  q->key[k++] = m[off + 1];
  off += 4;
  q->qend = off;
  q->edns = 0;
  q->udp_size = 0;
  if (m[11] == 1) {
    if (off + 11 > len || m[off] != 0 || m[off + 1] != 0 || m[off + 2] != 41) return 0;
    uint32_t rdlen = (uint32_t)(m[off + 9] << 8 | m[off + 10]);
    if (off + 11 + rdlen > len || m[off + 6] != 0) return 0; /* truncated, or EDNS version above 0 */
    q->edns = 1;
    q->udp_size = (uint32_t)(m[off + 3] << 8 | m[off + 4]);
  }
  q->key[k++] = (unsigned char)q->edns;
  q->keylen = (uint16_t)k;
  return 1;
}

static entry_t **set_of(ctx_t *c, const question_t *q) {
  return &c->cache[(fnv(q->key, q->keylen) & (SETS - 1)) * WAYS];
}

static entry_t *lookup(ctx_t *c, const question_t *q) {
  entry_t **set = set_of(c, q);
  for (int w = 0; w < WAYS; w++) {
    entry_t *e = set[w];
    if (e && e->keylen == q->keylen && memcmp(e->key, q->key, q->keylen) == 0) {
      e->hit = 1;
      return e;
    }
  }
  return NULL;
}

static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

static void record_latency(ctx_t *c, uint64_t us, uint32_t count) {
  uint32_t word;
  if (us < 128) word = (uint32_t)us;
  else {
    uint32_t e = 0;
    while ((us >> e) >= 128) e++;
    if (e > 16) e = 16, us = 127ull << 16;
    word = 128 + (e - 1) * 64 + (uint32_t)((us >> e) - 64);
  }
  c->stats[C_LAT + word] += count;
}

/* ---- response rate limiting (the rules of src/dns/rrl.ts) ---- */

enum { V_ANSWER, V_DROP, V_SLIP };

static uint32_t rrl_home(const rrl_t *r, uint64_t key) {
  return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & r->mask;
}

/* Removes slot i and shifts back the entries after it that were placed past their home. */
static void rrl_delete(rrl_t *r, uint32_t i) {
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & r->mask;
    if (r->t[j].key == 0) break;
    uint32_t home = rrl_home(r, r->t[j].key);
    if (((j - home) & r->mask) >= ((j - i) & r->mask)) {
      r->t[i] = r->t[j];
      i = j;
    }
  }
  r->t[i].key = 0;
  r->size--;
}

/* One step of the sweep: at most `step` slots from where the last stopped; quiet prefixes are forgotten. */
static void rrl_sweep(rrl_t *r, uint64_t now) {
  r->last_step = now;
  for (uint32_t n = 0; n < r->step && r->size > 0; n++) {
    if (r->cursor > r->mask) r->cursor = 0;
    bucket_t *b = &r->t[r->cursor];
    if (b->key != 0 && now - b->at > QUIET_MS) rrl_delete(r, r->cursor); /* look at this slot again */
    else r->cursor++;
  }
}

static void refill(rrl_t *r, bucket_t *b, uint64_t now) {
  double t = b->tokens + (double)(now - b->at) * r->rate / 1000.0;
  b->tokens = t < r->rate ? t : r->rate;
  b->at = now;
}

/* The /24 of an IPv4 sender, the /56 of an IPv6 one; never 0. */
static uint64_t sender_key(const unsigned char *sa) {
  sa_family_t fam;
  memcpy(&fam, sa, sizeof fam);
  if (fam == AF_INET) return (1ull << 60) | (uint64_t)sa[4] << 16 | (uint64_t)sa[5] << 8 | sa[6];
  if (fam == AF_INET6) {
    uint64_t k = 2ull << 60;
    for (int i = 8; i < 15; i++) k |= (uint64_t)sa[i] << (8 * (14 - i));
    return k;
  }
  return 3ull << 60;
}

static int rrl_check(ctx_t *c, uint64_t key, uint64_t now) {
  rrl_t *r = &c->rrl;
  if (r->rate <= 0) return V_ANSWER;
  if (now - r->last_step >= SWEEP_EVERY_MS) rrl_sweep(r, now);
  uint32_t i = rrl_home(r, key);
  while (r->t[i].key != 0 && r->t[i].key != key) i = (i + 1) & r->mask;
  bucket_t *b = &r->t[i];
  if (b->key == key) refill(r, b, now);
  else if (r->size < r->max) {
    b->key = key;
    b->tokens = r->rate;
    b->at = now;
    b->dropped = 0;
    r->size++;
  } else {
    /* A full table: the newcomers share one bucket (being limited together is the safe side). */
    b = &r->overflow;
    refill(r, b, now);
  }
  if (b->tokens >= 1) {
    b->tokens -= 1;
    return V_ANSWER;
  }
  b->dropped++;
  if (r->slip > 0 && b->dropped % r->slip == 0) {
    c->stats[C_RRL_SLIPPED]++;
    return V_SLIP;
  }
  c->stats[C_RRL_DROPPED]++;
  return V_DROP;
}

/* The message at p as an RRL slip: header and question, TC set, no records. Returns its length. */
static uint32_t slip_in_place(unsigned char *p, uint32_t len) {
  p[2] |= 0x02;
  memset(p + 6, 0, 6);
  if (p[4] == 0 && p[5] == 0) return 12;
  uint32_t off = 12;
  while (off < len && p[off] != 0 && p[off] <= 63) off += 1u + p[off];
  off += 1 + 4;
  return off <= len ? off : len;
}

/*
 * Answers datagram i of the batch here if its question is known: returns 1
 * with the answer's length in *out_len (0: rate limiting dropped it), or 0
 * when JavaScript is to answer it.
 */
static int answer_here(sock_t *s, uint32_t i, uint32_t len, uint64_t now, uint32_t *out_len) {
  ctx_t *c = s->ctx;
  const unsigned char *m = s->in + (size_t)i * SLOT;
  question_t q;
  if (!read_question(m, len, &q)) return 0;
  entry_t *e = lookup(c, &q);
  if (!e) return 0;
  uint32_t limit = !q.edns ? 512 : q.udp_size < 512 ? 512 : q.udp_size;
  uint32_t qlen = q.qend - 12;
  uint32_t r = e->turn % e->nrot;
  unsigned char *o = s->answers + (size_t)i * ANSWER_MAX;
  const uint16_t *counts = e->counts;
  const unsigned char *body = e->data + e->rot_off[r];
  uint32_t blen = e->rot_len[r];
  uint16_t flags = (uint16_t)(0x8000 | (m[2] << 8 & 0x0100) | e->flags);
  int truncated = 12 + qlen + blen > limit;
  if (truncated) {
    flags |= 0x0200;
    counts = e->tcounts;
    body = e->data + e->trunc_off;
    blen = e->trunc_len;
  }
  if (12 + qlen + blen > ANSWER_MAX) return 0; /* never: learn() keeps only answers that fit any question */
  e->turn++;
  c->stats[C_QUERIES]++;
  if ((e->flags & 0xf) == 3) c->stats[C_NXDOMAIN]++;
  else if ((e->flags & 0xf) == 5) c->stats[C_REFUSED]++;
  if (truncated) c->stats[C_TRUNCATED]++;
  o[0] = m[0];
  o[1] = m[1];
  put16(o + 2, flags);
  put16(o + 4, 1);
  put16(o + 6, counts[0]);
  put16(o + 8, counts[1]);
  put16(o + 10, counts[2]);
  memcpy(o + 12, m + 12, qlen);
  memcpy(o + 12 + qlen, body, blen);
  *out_len = 12 + qlen + blen;
  int v = rrl_check(c, sender_key(s->addrs + (size_t)i * ADDR), now);
  if (v == V_DROP) *out_len = 0;
  else if (v == V_SLIP) *out_len = slip_in_place(o, *out_len);
  else c->stats[C_NATIVE]++;
  return 1;
}

/* Sends k prepared messages; a full send buffer or an unreachable sender loses that one, as UDP may. */
static uint32_t send_all(int fd, struct mmsghdr *msgs, uint32_t k) {
  uint32_t done = 0, sent = 0;
  while (done < k) {
    int r = sendmmsg(fd, msgs + done, k - done, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      done++;
      continue;
    }
    done += (uint32_t)r;
    sent += (uint32_t)r;
  }
  return sent;
}

static void set_msg(struct mmsghdr *msg, struct iovec *iov, void *base, uint32_t len, unsigned char *sa) {
  sa_family_t fam;
  memcpy(&fam, sa, sizeof fam);
  iov->iov_base = base;
  iov->iov_len = len;
  memset(msg, 0, sizeof *msg);
  msg->msg_hdr.msg_iov = iov;
  msg->msg_hdr.msg_iovlen = 1;
  msg->msg_hdr.msg_name = sa;
  msg->msg_hdr.msg_namelen = fam == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* What each kind of handle is tagged with, so that one is never taken for the other. */
static const napi_type_tag SOCK_TAG = { 0x7564702d62617463ull, 0x682d736f636b6574ull };
static const napi_type_tag CTX_TAG = { 0x7564702d62617463ull, 0x682d636f6e746578ull };

/* The C struct behind `v` when it is a handle tagged `tag`, else NULL with a TypeError thrown. */
static void *handle_of(napi_env env, napi_value v, const napi_type_tag *tag, const char *what) {
  void *p = NULL;
  napi_valuetype t;
  bool ok = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  return p;
}

static void maybe_free(sock_t *s) {
  if (!s->poll_closed || !s->finalized) return;
  ctx_unref(s->ctx);
  free(s->answers);
  free(s);
}

static void on_poll_closed(uv_handle_t *h) {
  sock_t *s = h->data;
  s->poll_closed = 1;
  if (s->hook) {
    napi_remove_async_cleanup_hook(s->hook);
    s->hook = NULL;
  }
  maybe_free(s);
}

static void start_close(sock_t *s) {
  if (s->closing) return;
  s->closing = 1;
  uv_poll_stop(&s->poll);
  close(s->fd);
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}

/* The thread's environment is going away (worker exit): close before its loop does. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  sock_t *s = arg;
  s->hook = handle;
  if (s->poll_closed) {
    napi_remove_async_cleanup_hook(handle);
    s->hook = NULL;
    return;
  }
  start_close(s);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  sock_t *s = data;
  s->finalized = 1;
  if (s->ctx_ref) napi_delete_reference(env, s->ctx_ref), s->ctx_ref = NULL;
  if (!s->closing) start_close(s);
  maybe_free(s);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  if (status < 0 || s->closing) return;
  struct mmsghdr msgs[BATCH], out[BATCH];
  struct iovec iov[BATCH], oiov[BATCH];
  napi_handle_scope scope = NULL;
  napi_value cb, recv, argv[1], result;
  ctx_t *c = s->ctx;
  for (int round = 0; round < ROUNDS && !s->closing; round++) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = s->in + (size_t)i * SLOT;
      iov[i].iov_len = SLOT;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = s->addrs + (size_t)i * ADDR;
      msgs[i].msg_hdr.msg_namelen = ADDR;
    }
    int n = recvmmsg(s->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    uint64_t t0 = uv_hrtime();
    uint64_t now = uv_now(h->loop);
    check_seq(c);
    uint32_t k = 0, left = 0;
    for (int i = 0; i < n; i++) {
      uint32_t len = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : msgs[i].msg_len, alen;
      if (len > 0 && answer_here(s, (uint32_t)i, len, now, &alen)) {
        len = 0; /* answered (or dropped): JavaScript skips it */
        if (alen > 0) set_msg(&out[k], &oiov[k], s->answers + (size_t)i * ANSWER_MAX, alen, s->addrs + (size_t)i * ADDR), k++;
      }
      s->lens[i] = len;
      if (len > 0) left++;
    }
    if (k > 0) {
      send_all(s->fd, out, k);
      record_latency(c, (uv_hrtime() - t0) / 1000, k);
    }
    if (left > 0) {
      if (!scope) {
        if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
        napi_get_reference_value(s->env, s->cb, &cb);
        napi_get_undefined(s->env, &recv);
      }
      napi_create_uint32(s->env, (uint32_t)n, &argv[0]);
      if (napi_call_function(s->env, recv, cb, 1, argv, &result) == napi_pending_exception) {
        napi_value err;
        napi_get_and_clear_last_exception(s->env, &err);
        napi_fatal_exception(s->env, err);
        break;
      }
    }
    if (n < BATCH) break;
  }
  if (scope) napi_close_handle_scope(s->env, scope);
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_string_utf8(env, err == EADDRINUSE ? "EADDRINUSE" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : err == EACCES ? "EACCES" : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, e, "code", code);
  napi_throw(env, e);
  return NULL;
}

static napi_value shared(napi_env env, sock_t *s, int idx, size_t len, void **data) {
  napi_value ab;
  napi_create_arraybuffer(env, len, data, &ab);
  memset(*data, 0, len);
  napi_create_reference(env, ab, 1, &s->bufs[idx]);
  return ab;
}

/* open(address, port, onBatch, context) -> { handle, in, lens, addrs, out, meta, batch, slot } */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char host[64] = {0};
  size_t hl = 0;
  uint32_t port = 0;
  napi_valuetype t;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hl) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &port) != napi_ok || port > 65535 ||
      napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "open(address, port, onBatch, context)");
    return NULL;
  }
  ctx_t *ctx = handle_of(env, argv[3], &CTX_TAG, "open(address, port, onBatch, context): not a context");
  if (!ctx) return NULL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  int family;
  if (strchr(host, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    family = AF_INET6;
    sl = sizeof *a;
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) family = -1;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    family = AF_INET;
    sl = sizeof *a;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) family = -1;
  }
  if (family < 0) {
    napi_throw_type_error(env, NULL, "not an IP address");
    return NULL;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  sock_t *s = calloc(1, sizeof *s);
  unsigned char *answers = malloc((size_t)BATCH * ANSWER_MAX);
  if (!s || !answers) {
    free(s);
    free(answers);
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->fd = fd;
  s->env = env;
  s->answers = answers;
  s->ctx = ctx;
  s->ctx->refs++;
  napi_create_reference(env, argv[3], 1, &s->ctx_ref);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  napi_create_reference(env, argv[2], 1, &s->cb);
  napi_value obj, handle, n;
  napi_create_object(env, &obj);
  napi_create_external(env, s, on_finalize, NULL, &handle);
  napi_type_tag_object(env, handle, &SOCK_TAG);
  napi_set_named_property(env, obj, "handle", handle);
  napi_set_named_property(env, obj, "in", shared(env, s, B_IN, (size_t)BATCH * SLOT, (void **)&s->in));
  napi_set_named_property(env, obj, "lens", shared(env, s, B_LENS, BATCH * sizeof(uint32_t), (void **)&s->lens));
  napi_set_named_property(env, obj, "addrs", shared(env, s, B_ADDRS, (size_t)BATCH * ADDR, (void **)&s->addrs));
  napi_set_named_property(env, obj, "out", shared(env, s, B_OUT, OUT_BYTES, (void **)&s->out));
  napi_set_named_property(env, obj, "meta", shared(env, s, B_META, BATCH * 3 * sizeof(uint32_t), (void **)&s->meta));
  napi_create_uint32(env, BATCH, &n);
  napi_set_named_property(env, obj, "batch", n);
  napi_create_uint32(env, SLOT, &n);
  napi_set_named_property(env, obj, "slot", n);
  napi_add_async_cleanup_hook(env, on_env_cleanup, s, &s->hook);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  return obj;
}

static sock_t *sock_of(napi_env env, napi_value v) {
  return handle_of(env, v, &SOCK_TAG, "not a udp-batch handle");
}

/*
 * send(handle, n): sends the n answers meta describes, each past rate
 * limiting (dropped, or sent as a slip); returns how many the kernel took.
 */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], res;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = argc == 2 ? sock_of(env, argv[0]) : NULL;
  uint32_t n = 0;
  if (!s || napi_get_value_uint32(env, argv[1], &n) != napi_ok) return NULL;
  if (n > BATCH) n = BATCH;
  uint32_t sent = 0;
  if (!s->closing && n > 0) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    uint32_t k = 0;
    uint64_t now = uv_now(s->poll.loop);
    for (uint32_t i = 0; i < n; i++) {
      uint32_t off = s->meta[i * 3], len = s->meta[i * 3 + 1], slot = s->meta[i * 3 + 2];
      if (off > OUT_BYTES || len < 12 || len > OUT_BYTES - off || slot >= BATCH) continue;
      unsigned char *sa = s->addrs + (size_t)slot * ADDR;
      int v = rrl_check(s->ctx, sender_key(sa), now);
      if (v == V_DROP) continue;
      if (v == V_SLIP) len = slip_in_place(s->out + off, len);
      set_msg(&msgs[k], &iov[k], s->out + off, len, sa);
      k++;
    }
    sent = send_all(s->fd, msgs, k);
  }
  napi_create_uint32(env, sent, &res);
  return res;
}

static int get_u16s(napi_env env, napi_value arr, uint16_t *out, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    uint32_t x;
    if (napi_get_element(env, arr, i, &v) != napi_ok || napi_get_value_uint32(env, v, &x) != napi_ok || x > 65535) return 0;
    out[i] = (uint16_t)x;
  }
  return 1;
}

/*
 * learn(handle, slot, flags, counts, rotations, truncatedCounts, truncated,
 * turn): the answer JavaScript made for the question of datagram `slot` of
 * the batch under way, kept for the next datagrams asking it, from
 * rotation `turn` on. Returns whether
 * it was kept: not when the question is not one answered here, when an
 * answer would be longer than ANSWER_MAX, or when its set is all in use.
 */
static napi_value js_learn(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], res;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = argc == 8 ? sock_of(env, argv[0]) : NULL;
  if (!s) return NULL;
  ctx_t *c = s->ctx;
  uint32_t slot, flags, nrot, turn;
  uint16_t counts[3], tcounts[3];
  int kept = 0;
  if (s->closing || napi_get_value_uint32(env, argv[1], &slot) != napi_ok || slot >= BATCH ||
      napi_get_value_uint32(env, argv[2], &flags) != napi_ok || !get_u16s(env, argv[3], counts, 3) ||
      napi_get_array_length(env, argv[4], &nrot) != napi_ok || nrot == 0 || nrot > ROT_MAX || !get_u16s(env, argv[5], tcounts, 3) ||
      napi_get_value_uint32(env, argv[7], &turn) != napi_ok)
    goto done;
  question_t q;
  if (s->lens[slot] == 0 || s->lens[slot] > SLOT || !read_question(s->in + (size_t)slot * SLOT, s->lens[slot], &q)) goto done;
  void *parts[ROT_MAX + 1];
  size_t lens[ROT_MAX + 1], total = 0;
  for (uint32_t i = 0; i <= nrot; i++) {
    napi_value b = argv[6];
    if (i < nrot && napi_get_element(env, argv[4], i, &b) != napi_ok) goto done;
    if (napi_get_buffer_info(env, b, &parts[i], &lens[i]) != napi_ok) goto done;
    /* Every rotation must fit whatever the question's length (at most 255 + 1 + 4 bytes). */
    if (12 + 260 + lens[i] > ANSWER_MAX) goto done;
    total += lens[i];
  }
  entry_t **set = set_of(c, &q);
  int way = -1;
  for (int w = 0; w < WAYS && way < 0; w++)
    if (set[w] && set[w]->keylen == q.keylen && memcmp(set[w]->key, q.key, q.keylen) == 0) way = w;
  for (int w = 0; w < WAYS && way < 0; w++)
    if (!set[w]) way = w;
  for (int w = 0; w < WAYS && way < 0; w++)
    if (!set[w]->hit) way = w;
  if (way < 0) {
    /* Every way asked since the last pass: none is pushed out, and each must be asked again to stay. */
    for (int w = 0; w < WAYS; w++) set[w]->hit = 0;
    goto done;
  }
  entry_t *e = malloc(sizeof *e + total);
  if (!e) goto done;
  memset(e, 0, sizeof *e);
  e->keylen = q.keylen;
  memcpy(e->key, q.key, q.keylen);
  e->flags = (uint16_t)(flags & 0x040f); /* AA and RCODE: QR, TC and RD are set per answer */
  memcpy(e->counts, counts, sizeof counts);
  memcpy(e->tcounts, tcounts, sizeof tcounts);
  e->nrot = nrot;
  e->turn = turn;
  size_t at = 0;
  for (uint32_t i = 0; i <= nrot; i++) {
    if (lens[i] > 0) memcpy(e->data + at, parts[i], lens[i]);
    if (i < nrot) e->rot_off[i] = (uint32_t)at, e->rot_len[i] = (uint32_t)lens[i];
    else e->trunc_off = (uint32_t)at, e->trunc_len = (uint32_t)lens[i];
    at += lens[i];
  }
  free(set[way]);
  set[way] = e;
  kept = 1;
done:
  napi_get_boolean(env, kept, &res);
  return res;
}

static void on_ctx_finalize(napi_env env, void *data, void *hint) {
  ctx_t *c = data;
  napi_delete_reference(env, c->seq_ref);
  napi_delete_reference(env, c->stats_ref);
  ctx_unref(c);
}

static uint32_t pow2_at_least(uint32_t n) {
  uint32_t p = 1024;
  while (p < n) p <<= 1;
  return p;
}

/*
 * context(seq: Int32Array, seqIndex, rate, slip, maxPrefixes) ->
 * { handle, stats: ArrayBuffer }: what the sockets of one DNS server share.
 */
static napi_value js_context(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type tt;
  size_t tlen;
  void *data;
  napi_value ab;
  size_t aoff;
  uint32_t idx, slip, max;
  double rate;
  bool is_ta = false;
  if (argc != 5 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[0], &tt, &tlen, &data, &ab, &aoff) != napi_ok || tt != napi_int32_array ||
      napi_get_value_uint32(env, argv[1], &idx) != napi_ok || idx >= tlen || napi_get_value_double(env, argv[2], &rate) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &slip) != napi_ok || napi_get_value_uint32(env, argv[4], &max) != napi_ok) {
    napi_throw_type_error(env, NULL, "context(seq, seqIndex, rate, slip, maxPrefixes)");
    return NULL;
  }
  ctx_t *c = calloc(1, sizeof *c);
  if (!c) return throw_errno(env, "calloc", ENOMEM);
  c->refs = 1;
  c->seq = (int32_t *)data + idx;
  c->known_seq = __atomic_load_n(c->seq, __ATOMIC_SEQ_CST);
  c->rrl.rate = rate > 0 ? rate : 0;
  c->rrl.slip = slip;
  c->rrl.max = max < 1 ? 1 : max;
  if (c->rrl.rate > 0) {
    /* At most half full, so that probes stay short. Pages are touched only as prefixes arrive. */
    uint32_t cap = pow2_at_least(c->rrl.max * 2);
    c->rrl.t = calloc(cap, sizeof(bucket_t));
    if (!c->rrl.t) {
      free(c);
      return throw_errno(env, "calloc", ENOMEM);
    }
    c->rrl.mask = cap - 1;
    /* A whole pass within about QUIET_MS at one step per SWEEP_EVERY_MS. */
    c->rrl.step = cap / (QUIET_MS / SWEEP_EVERY_MS) + 1;
    if (c->rrl.step < 1000) c->rrl.step = 1000;
    c->rrl.overflow.tokens = c->rrl.rate;
  }
  napi_value obj, handle, stats;
  napi_create_reference(env, argv[0], 1, &c->seq_ref);
  napi_create_arraybuffer(env, STAT_WORDS * sizeof(double), (void **)&c->stats, &stats);
  memset(c->stats, 0, STAT_WORDS * sizeof(double));
  napi_create_reference(env, stats, 1, &c->stats_ref);
  napi_create_object(env, &obj);
  napi_create_external(env, c, on_ctx_finalize, NULL, &handle);
  napi_type_tag_object(env, handle, &CTX_TAG);
  napi_set_named_property(env, obj, "handle", handle);
  napi_set_named_property(env, obj, "stats", stats);
  return obj;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = argc == 1 ? sock_of(env, argv[0]) : NULL;
  if (!s || s->closing) return NULL;
  start_close(s);
  if (s->ctx_ref) napi_delete_reference(env, s->ctx_ref), s->ctx_ref = NULL;
  napi_delete_reference(env, s->cb);
  for (int i = 0; i < B_COUNT; i++) napi_delete_reference(env, s->bufs[i]);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "context", NULL, js_context, NULL, NULL, NULL, napi_enumerable, NULL },
    { "learn", NULL, js_learn, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
