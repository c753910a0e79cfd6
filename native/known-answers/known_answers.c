/*
 * Answers, without entering JavaScript, the requests on a kept-alive HTTP
 * connection whose answer is already known: a listener's redirect, decided
 * once per mount in JavaScript and kept here until the cluster snapshot
 * changes. A redirect through uWebSockets.js crossed into JavaScript for
 * every request (handler, request and response objects, four calls back
 * into C++), and that crossing was most of what a redirect cost above the
 * kernel's TCP work.
 *
 * create(seq, seqIndex, stats, statsIndex, decide, handoff, closed) makes
 * one answerer per port and worker, polling on the calling thread's libuv
 * loop. `seq[seqIndex]` is the snapshot's sequence word in shared memory:
 * when it moves, every known answer is forgotten. `stats[statsIndex]` is
 * the worker's redirect counter, added to atomically as JavaScript does.
 *
 * take(server, fd, peeked) is offered a connection whose first request the
 * caller has peeked (not consumed). If that request is one this code
 * answers, the answerer owns the descriptor from then on and reads and
 * answers the request itself; otherwise it returns false and the caller
 * gives the untouched connection to its other owner.
 *
 * A request it answers is GET or HEAD, HTTP/1.1, with a target starting
 * with '/', a head of at most HEAD_MAX bytes, and none of the headers that
 * change how a connection or a body is handled (Content-Length,
 * Transfer-Encoding, Connection other than keep-alive, Upgrade, Expect). A
 * target not known yet is asked of decide(isHead, target), which returns
 * null or [head, body, keep]: the status line and headers up to (not
 * including) Date, the body, and whether the answer may be kept for the
 * snapshot. Anything else leaves this code: handoff(fd, unsent, unread,
 * headAgeMs) gives the descriptor to JavaScript with the answers not yet
 * sent, the bytes read and not answered and how long ago the head they
 * start began, and JavaScript serves the rest of the connection (returning
 * true; otherwise the descriptor is closed here). A head that comes in more
 * than MAX_HEAD_READS pieces goes to JavaScript too. A connection that closes, stays idle IDLE_MS (as
 * uWebSockets.js lets HTTP connections) or has not completed a head
 * IDLE_MS after its first byte, however slowly the rest trickles in, is
 * closed and reported by closed().
 *
 * With `logging`, each answer is also kept as a record for the listener
 * log (time, method, the peer take() was given, target, Referer,
 * User-Agent, X-Forwarded-For), which drainLog() hands to JavaScript to
 * format, at most LOG_MAX_RECORDS between two calls (more are counted).
 *
 * Answers for pipelined requests go out in order in one send. A client
 * that does not read its answers is not read from until it has: at most
 * one scratch buffer of answers waits per connection.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 8192           /* a longer head goes to JavaScript, which answers 431 */
#define READ_MAX 16384          /* read at most this much at once */
#define SCRATCH 65536           /* answers built per send */
#define MAX_KNOWN 64            /* targets remembered per snapshot */
#define IDLE_MS 10000           /* an idle connection, or a head not whole, is let go */
#define SWEEP_MS 1000
#define LOG_TEXT_MAX 512        /* longest referer, user agent, forwarded-for or target kept for the log */
#define LOG_MAX_RECORDS 20000   /* records kept between two drainLog() calls; more are counted as dropped */
#define MAX_HEAD_READS 16       /* a head in more pieces goes to JavaScript: each piece here re-reads the head */

typedef struct known {
  char *target;
  size_t tlen;
  char *head; /* status line and headers before Date */
  size_t hlen;
  char *tail; /* "Content-Length: N" and the blank line */
  size_t tlen_tail;
  char *body;
  size_t blen;
} known_t;

typedef struct server server_t;

typedef struct conn {
  uv_poll_t poll;
  int fd;
  server_t *srv;
  struct conn *prev, *next;
  uint64_t active_ms;
  uint64_t head_since_ms; /* when the partial head in `in` began; 0 when none */
  unsigned head_reads;    /* reads that added to that partial head */
  char peer[64];     /* the client's address as JavaScript gave it, for the listener log */
  uint8_t peer_len;
  char *in;          /* bytes read and not answered yet (a partial head, or requests held back) */
  size_t in_len;
  char *out;         /* answers the socket has not taken yet */
  size_t out_len, out_off;
  int closing;
} conn_t;

struct server {
  napi_env env;
  napi_ref decide, handoff, closed, seq_ref, stats_ref;
  napi_async_context async;
  napi_ref resource;
  int32_t *seq;
  int32_t *stats;
  int32_t known_seq;
  known_t known[MAX_KNOWN];
  int nknown;
  conn_t *conns;
  uv_timer_t sweep;
  int closing;
  int live;          /* handles not closed yet: the timer and each connection's poll */
  uint64_t answers;  /* since drain() */
  uint64_t answer_ns;
  int logging;       /* records for the listener log are kept */
  char *log;
  size_t log_len, log_cap;
  uint32_t log_count, log_dropped;
  time_t date_sec;
  char date[64];
  size_t date_len;
  char rbuf[HEAD_MAX + READ_MAX];
  char scratch[SCRATCH];
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void maybe_free_server(server_t *s) {
  if (s->closing && s->live == 0) {
    free(s->log);
    for (int i = 0; i < s->nknown; i++) free(s->known[i].target);
    free(s);
  }
}

static void forget_known(server_t *s) {
  for (int i = 0; i < s->nknown; i++) free(s->known[i].target);
  s->nknown = 0;
}

/* "Date: ...\r\n", made again once a second. */
static void refresh_date(server_t *s) {
  time_t t = time(NULL);
  if (t == s->date_sec) return;
  s->date_sec = t;
  struct tm tm;
  gmtime_r(&t, &tm);
  s->date_len = strftime(s->date, sizeof s->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

/* Calls a JavaScript callback; true when it ran and returned true. */
static int call_js(server_t *s, napi_ref fn, size_t argc, napi_value *argv) {
  napi_value cb, result, resource;
  if (!fn || napi_get_reference_value(s->env, fn, &cb) != napi_ok || !cb) return 0;
  /* napi_make_callback wants an object for `this`: the async resource. */
  if (napi_get_reference_value(s->env, s->resource, &resource) != napi_ok || !resource) return 0;
  napi_status st = napi_make_callback(s->env, s->async, resource, cb, argc, argv, &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(s->env, &err);
    napi_fatal_exception(s->env, err);
    return 0;
  }
  bool yes = false;
  return st == napi_ok && napi_get_value_bool(s->env, result, &yes) == napi_ok && yes;
}

static void on_conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  server_t *s = c->srv;
  free(c->in);
  free(c->out);
  free(c);
  s->live--;
  maybe_free_server(s);
}

static void unlink_conn(conn_t *c) {
  server_t *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* Ends the connection here; reports it unless the worker is closing. */
static void close_conn(conn_t *c, int report) {
  if (c->closing) return;
  c->closing = 1;
  server_t *s = c->srv;
  unlink_conn(c);
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t *)&c->poll, on_conn_closed);
  close(c->fd);
  c->fd = -1;
  if (report && !s->closing) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
    call_js(s, s->closed, 0, NULL);
    napi_close_handle_scope(s->env, scope);
  }
}

static napi_value buffer_of(napi_env env, const char *p, size_t n) {
  napi_value v;
  void *data;
  if (napi_create_buffer_copy(env, n, n ? p : "", &data, &v) != napi_ok) napi_get_null(env, &v);
  return v;
}

/* Gives the connection to JavaScript with what it has not answered, and how old its unfinished head is. */
static void hand_off(conn_t *c, const char *unsent, size_t ulen, const char *unread, size_t rlen) {
  if (c->closing) return;
  server_t *s = c->srv;
  int fd = c->fd;
  double head_age = c->head_since_ms ? (double)(uv_now(c->poll.loop) - c->head_since_ms) : 0;
  c->closing = 1;
  unlink_conn(c);
  uv_poll_stop(&c->poll);
  /* uv_close takes the descriptor out of epoll at once, before its new owner adds it. */
  uv_close((uv_handle_t *)&c->poll, on_conn_closed);
  c->fd = -1;
  napi_handle_scope scope;
  int taken = 0;
  if (napi_open_handle_scope(s->env, &scope) == napi_ok) {
    napi_value argv[4];
    napi_create_int32(s->env, fd, &argv[0]);
    argv[1] = buffer_of(s->env, unsent, ulen);
    argv[2] = buffer_of(s->env, unread, rlen);
    napi_create_double(s->env, head_age, &argv[3]);
    taken = call_js(s, s->handoff, 4, argv);
    napi_close_handle_scope(s->env, scope);
  }
  if (!taken) {
    /*
     * JavaScript did not take the descriptor (it cannot run: a thread being
     * torn down; or making the socket failed): the connection ends here, and
     * is reported when JavaScript can hear it.
     */
    close(fd);
    if (!s->closing && napi_open_handle_scope(s->env, &scope) == napi_ok) {
      call_js(s, s->closed, 0, NULL);
      napi_close_handle_scope(s->env, scope);
    }
  }
}

static int is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int name_is(const char *p, size_t n, const char *want) {
  return n == strlen(want) && strncasecmp(p, want, n) == 0;
}

/*
 * One request at p: 1 when it is whole and one this code answers (then
 * *head_len, *is_head, *target and *tlen are set), 0 when more must come,
 * -1 when JavaScript must answer it.
 */
/* What the listener log keeps of a request's headers: Referer, User-Agent, X-Forwarded-For (the first of each). */
typedef struct {
  const char *v[3];
  size_t n[3];
} spans_t;

static const char *const LOGGED[3] = { "referer", "user-agent", "x-forwarded-for" };

static int parse(const char *p, size_t len, size_t *head_len, int *is_head, const char **target, size_t *tlen, spans_t *sp) {
  size_t span = len < HEAD_MAX ? len : HEAD_MAX;
  const char *end = memmem(p, span, "\r\n\r\n", 4);
  /* A line that ends in a bare LF: JavaScript answers such heads (or refuses them) at once. */
  const char *stop = end ? end + 4 : p + span;
  for (const char *lf = memchr(p, '\n', (size_t)(stop - p)); lf; lf = memchr(lf + 1, '\n', (size_t)(stop - lf - 1)))
    if (lf == p || lf[-1] != '\r') return -1;
  if (!end) return len >= HEAD_MAX ? -1 : 0;
  *head_len = (size_t)(end - p) + 4;
  const char *q;
  if (len >= 4 && memcmp(p, "GET ", 4) == 0) {
    *is_head = 0;
    q = p + 4;
  } else if (len >= 5 && memcmp(p, "HEAD ", 5) == 0) {
    *is_head = 1;
    q = p + 5;
  } else {
    return -1;
  }
  if (*q != '/') return -1;
  const char *t = q;
  while (q < end && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f) q++;
  if (end - q < 10 || memcmp(q, " HTTP/1.1\r\n", 11) != 0) return -1;
  *target = t;
  *tlen = (size_t)(q - t);
  const char *line = q + 11;
  while (line < end + 2) {
    const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    if (!eol) return -1;
    const char *colon = line;
    while (colon < eol && is_tchar((unsigned char)*colon)) colon++;
    if (colon == line || colon == eol || *colon != ':') return -1;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < eol && (*v == ' ' || *v == '\t')) v++;
    const char *ve = eol;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (const char *x = v; x < ve; x++)
      if ((unsigned char)*x < 0x20 && *x != '\t') return -1;
    if (name_is(line, nlen, "content-length") || name_is(line, nlen, "transfer-encoding") ||
        name_is(line, nlen, "upgrade") || name_is(line, nlen, "expect")) return -1;
    if (name_is(line, nlen, "connection") && !(ve - v == 10 && strncasecmp(v, "keep-alive", 10) == 0)) return -1;
    if (sp)
      for (int i = 0; i < 3; i++)
        if (!sp->v[i] && name_is(line, nlen, LOGGED[i])) {
          sp->v[i] = v;
          sp->n[i] = (size_t)(ve - v);
        }
    line = eol + 2;
  }
  return 1;
}

static known_t *find_known(server_t *s, const char *t, size_t tlen) {
  for (int i = 0; i < s->nknown; i++)
    if (s->known[i].tlen == tlen && memcmp(s->known[i].target, t, tlen) == 0) return &s->known[i];
  return NULL;
}

/* The snapshot moved on: what was known may be wrong now. */
static void check_seq(server_t *s) {
  int32_t seq = __atomic_load_n(&s->seq[0], __ATOMIC_SEQ_CST);
  if (seq != s->known_seq) {
    forget_known(s);
    s->known_seq = seq;
  }
}

/*
 * Asks JavaScript for the answer to a target; writes it into *tmp (one
 * allocation) and returns it, or NULL when JavaScript answers the request.
 * *keep is set when it may be remembered.
 */
static known_t *ask(server_t *s, int is_head, const char *t, size_t tlen, known_t *tmp, int *keep) {
  napi_env env = s->env;
  known_t *out = NULL;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return NULL;
  napi_value fn, recv, argv[2], r;
  napi_get_reference_value(env, s->decide, &fn);
  napi_get_undefined(env, &recv);
  napi_get_boolean(env, is_head, &argv[0]);
  napi_create_string_latin1(env, t, tlen, &argv[1]);
  napi_status st = napi_call_function(env, recv, fn, 2, argv, &r);
  if (st == napi_pending_exception) {
    /*
     * JavaScript answers this request then, through the door, where the same
     * error (if it is one) is reported as any other; a thread being
     * terminated lands here too, and must not be told of it again.
     */
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    goto done;
  }
  bool arr = false;
  if (st != napi_ok || napi_is_array(env, r, &arr) != napi_ok || !arr) goto done;
  napi_value hv, bv, kv;
  void *h, *b;
  size_t hl, bl;
  bool k = false;
  if (napi_get_element(env, r, 0, &hv) != napi_ok || napi_get_buffer_info(env, hv, &h, &hl) != napi_ok) goto done;
  if (napi_get_element(env, r, 1, &bv) != napi_ok || napi_get_buffer_info(env, bv, &b, &bl) != napi_ok) goto done;
  if (napi_get_element(env, r, 2, &kv) == napi_ok) napi_get_value_bool(env, kv, &k);
  char tail[48];
  int tl = snprintf(tail, sizeof tail, "Content-Length: %zu\r\n\r\n", bl);
  char *mem = malloc(tlen + hl + (size_t)tl + bl + 1);
  if (!mem) goto done;
  memcpy(mem, t, tlen);
  memcpy(mem + tlen, h, hl);
  memcpy(mem + tlen + hl, tail, (size_t)tl);
  memcpy(mem + tlen + hl + tl, b, bl);
  tmp->target = mem;
  tmp->tlen = tlen;
  tmp->head = mem + tlen;
  tmp->hlen = hl;
  tmp->tail = mem + tlen + hl;
  tmp->tlen_tail = (size_t)tl;
  tmp->body = mem + tlen + hl + tl;
  tmp->blen = bl;
  *keep = k;
  out = tmp;
done:
  napi_close_handle_scope(env, scope);
  return out;
}

/*
 * The answer to a target: the one known, or else JavaScript's, kept when it
 * may be and the snapshot did not move while it was decided (under the
 * sequence it saw). NULL when JavaScript answers the request itself. An
 * answer not kept is *tmp, whose allocation (tmp->target) the caller frees.
 */
static known_t *learn(server_t *s, int is_head, const char *t, size_t tlen, known_t *tmp) {
  known_t *k = find_known(s, t, tlen);
  if (k) return k;
  int keep = 0;
  int32_t seq0 = __atomic_load_n(&s->seq[0], __ATOMIC_SEQ_CST);
  k = ask(s, is_head, t, tlen, tmp, &keep);
  if (!k || s->closing || !keep || __atomic_load_n(&s->seq[0], __ATOMIC_SEQ_CST) != seq0) return k;
  check_seq(s);
  if (s->nknown >= MAX_KNOWN) return k;
  s->known[s->nknown] = *tmp;
  tmp->target = NULL;
  return &s->known[s->nknown++];
}

/* Appends the answer to scratch at *n; 0 when it does not fit. */
static int put_answer(server_t *s, size_t *n, const known_t *k, int is_head) {
  size_t need = k->hlen + s->date_len + k->tlen_tail + (is_head ? 0 : k->blen);
  if (*n + need > SCRATCH) return 0;
  char *w = s->scratch + *n;
  memcpy(w, k->head, k->hlen);
  w += k->hlen;
  memcpy(w, s->date, s->date_len);
  w += s->date_len;
  memcpy(w, k->tail, k->tlen_tail);
  w += k->tlen_tail;
  if (!is_head) memcpy(w, k->body, k->blen);
  *n += need;
  return 1;
}

/* Sends what scratch holds; keeps what the socket did not take. -1 when the connection failed. */
/* Sends what the socket takes now, never waiting: the bytes taken; *failed on an error other than a full socket. */
static size_t send_now(int fd, const char *p, size_t n, int *failed) {
  size_t off = 0;
  *failed = 0;
  while (off < n) {
    ssize_t w = send(fd, p + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (!(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) *failed = 1;
    break;
  }
  return off;
}

static int send_scratch(conn_t *c, size_t n) {
  server_t *s = c->srv;
  int failed;
  size_t off = send_now(c->fd, s->scratch, n, &failed);
  if (failed) return -1;
  if (off < n) {
    c->out = malloc(n - off);
    if (!c->out) return -1;
    memcpy(c->out, s->scratch + off, n - off);
    c->out_len = n - off;
    c->out_off = 0;
  }
  return 0;
}

static void on_io(uv_poll_t *h, int status, int events);

/*
 * Keeps p[0..n) for later: whole requests held back (`partial` 0), or the
 * start of a head (`partial` 1), which keeps the time of its first byte
 * however many bytes follow; `fresh` says that head began in this read.
 */
static void keep_in(conn_t *c, const char *p, size_t n, int partial, int fresh) {
  if (!partial || n == 0 || fresh) {
    c->head_since_ms = 0;
    c->head_reads = 0;
  }
  if (n == 0) {
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    return;
  }
  if (partial) {
    if (!c->head_since_ms) c->head_since_ms = uv_now(c->poll.loop);
    c->head_reads++;
  }
  char *m = malloc(n);
  if (!m) {
    close_conn(c, 1);
    return;
  }
  memmove(m, p, n);
  free(c->in);
  c->in = m;
  c->in_len = n;
}

static int log_put(server_t *s, const char *p, size_t n) {
  if (n > LOG_TEXT_MAX) n = LOG_TEXT_MAX;
  if (s->log_len + 2 + n > s->log_cap) {
    size_t cap = s->log_cap ? s->log_cap * 2 : 65536;
    while (cap < s->log_len + 2 + n) cap *= 2;
    char *m = realloc(s->log, cap);
    if (!m) return 0;
    s->log = m;
    s->log_cap = cap;
  }
  s->log[s->log_len++] = (char)(n >> 8);
  s->log[s->log_len++] = (char)(n & 0xff);
  if (n) memcpy(s->log + s->log_len, p, n);
  s->log_len += n;
  return 1;
}

/*
 * One answered request for the listener log, which JavaScript formats:
 * when (Unix ms, as text), HEAD or GET, the peer, the target and the three
 * headers, each as a 16-bit length and its bytes.
 */
static void log_record(server_t *s, conn_t *c, int is_head, const char *t, size_t tlen, const spans_t *sp) {
  if (s->log_count >= LOG_MAX_RECORDS) {
    s->log_dropped++;
    return;
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char when[32];
  int wl = snprintf(when, sizeof when, "%lld", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
  size_t mark = s->log_len;
  if (log_put(s, when, (size_t)wl) && log_put(s, is_head ? "HEAD" : "GET", is_head ? 4 : 3) &&
      log_put(s, c->peer, c->peer_len) && log_put(s, t, tlen) &&
      log_put(s, sp->v[0], sp->n[0]) && log_put(s, sp->v[1], sp->n[1]) && log_put(s, sp->v[2], sp->n[2])) {
    s->log_count++;
    return;
  }
  s->log_len = mark;
  s->log_dropped++;
}

/* Adds answers to the counters (the worker's shared redirect count, and drain()'s). */
static void count_answers(server_t *s, uint64_t answered, uint64_t t0) {
  if (!answered) return;
  s->answers += answered;
  s->answer_ns += now_ns() - t0;
  __atomic_fetch_add(&s->stats[0], (int32_t)answered, __ATOMIC_SEQ_CST);
}

/*
 * Answers the whole requests in p[0..len) while they are known, in order,
 * one send per scratch buffer; keeps a partial head, or the requests after
 * answers the socket has not taken yet, for later.
 */
static void answer(conn_t *c, const char *p, size_t len) {
  server_t *s = c->srv;
  uint64_t t0 = now_ns();
  refresh_date(s);
  check_seq(s);
  size_t pos = 0;
  for (;;) {
    size_t n = 0;
    uint64_t answered = 0;
    enum { MORE, FULL, JS } stop = MORE;
    for (;;) {
      size_t head_len = 0, tlen = 0;
      int is_head = 0;
      const char *t = NULL;
      spans_t sp = { { NULL, NULL, NULL }, { 0, 0, 0 } };
      int r = pos < len ? parse(p + pos, len - pos, &head_len, &is_head, &t, &tlen, s->logging ? &sp : NULL) : 0;
      if (r == 0) break;
      known_t tmp = { 0 };
      known_t *k = r == 1 ? learn(s, is_head, t, tlen, &tmp) : NULL;
      if (c->closing || s->closing) {
        /* JavaScript, asked, closed this connection or the whole answerer. */
        free(tmp.target);
        if (!c->closing) close_conn(c, 0);
        return;
      }
      int fit = k ? put_answer(s, &n, k, is_head) : 0;
      free(tmp.target);
      if (!fit) {
        /* Not known, or one answer larger than scratch: JavaScript's. */
        stop = k && n > 0 ? FULL : JS;
        break;
      }
      answered++;
      pos += head_len;
      if (s->logging) log_record(s, c, is_head, t, tlen, &sp);
    }
    count_answers(s, answered, t0);
    if (stop == JS) {
      /* JavaScript answers from here: the answers so far go first, what the socket did not take with it. */
      int failed;
      size_t off = send_now(c->fd, s->scratch, n, &failed);
      hand_off(c, s->scratch + off, n - off, p + pos, len - pos);
      return;
    }
    if (n && send_scratch(c, n) < 0) {
      close_conn(c, 1);
      return;
    }
    if (c->out) {
      /* Not read from again until the client has taken its answers. */
      keep_in(c, p + pos, len - pos, 0, 0);
      if (!c->closing) uv_poll_start(&c->poll, UV_WRITABLE, on_io);
      return;
    }
    if (stop == MORE) break;
    t0 = now_ns();
  }
  if (len > pos && c->head_reads >= MAX_HEAD_READS && pos == 0) {
    /* A head that comes a few bytes at a time: the door reads those as they come, at no cost per piece. */
    hand_off(c, NULL, 0, p + pos, len - pos);
    return;
  }
  keep_in(c, p + pos, len - pos, 1, pos > 0);
}

static void on_io(uv_poll_t *h, int status, int events) {
  conn_t *c = h->data;
  if (c->closing) return;
  server_t *s = c->srv;
  if (status < 0) {
    close_conn(c, 1);
    return;
  }
  c->active_ms = uv_now(h->loop);
  if (c->out) {
    int failed;
    c->out_off += send_now(c->fd, c->out + c->out_off, c->out_len - c->out_off, &failed);
    if (failed) {
      close_conn(c, 1);
      return;
    }
    if (c->out_off < c->out_len) return;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    uv_poll_start(&c->poll, UV_READABLE, on_io);
    if (c->in_len) {
      /* The requests that waited for their turn. */
      size_t n = c->in_len;
      memcpy(s->rbuf, c->in, n);
      answer(c, s->rbuf, n);
    }
    return;
  }
  /* Here c->in holds less than HEAD_MAX: a partial head at most. */
  size_t have = c->in_len;
  if (have) memcpy(s->rbuf, c->in, have);
  ssize_t r;
  do r = recv(c->fd, s->rbuf + have, READ_MAX, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (r <= 0) {
    close_conn(c, 1);
    return;
  }
  answer(c, s->rbuf, have + (size_t)r);
}

static void on_sweep(uv_timer_t *t) {
  server_t *s = t->data;
  uint64_t now = uv_now(t->loop);
  for (conn_t *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (now - c->active_ms >= IDLE_MS || (c->head_since_ms && now - c->head_since_ms >= IDLE_MS)) close_conn(c, 1);
  }
}

static void on_timer_closed(uv_handle_t *h) {
  server_t *s = h->data;
  s->live--;
  maybe_free_server(s);
}

/* Closes every connection and stops; the server is freed once libuv has let go of it. */
static void on_env_cleanup(void *arg);

static void shut(server_t *s, int from_hook) {
  if (s->closing) return;
  s->closing = 1;
  if (!from_hook) napi_remove_env_cleanup_hook(s->env, on_env_cleanup, s);
  while (s->conns) close_conn(s->conns, 0);
  uv_timer_stop(&s->sweep);
  uv_close((uv_handle_t *)&s->sweep, on_timer_closed);
  napi_env env = s->env;
  napi_ref refs[] = { s->decide, s->handoff, s->closed, s->seq_ref, s->stats_ref, s->resource };
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    if (refs[i]) napi_delete_reference(env, refs[i]);
  s->decide = s->handoff = s->closed = s->seq_ref = s->stats_ref = s->resource = NULL;
  napi_async_destroy(env, s->async);
}

static void on_env_cleanup(void *arg) {
  shut(arg, 1);
}

/* The JavaScript handle was collected: nothing can call in any more. */
static void on_finalize(napi_env env, void *data, void *hint) {
  server_t *s = data;
  shut(s, 0);
  s->live--;
  maybe_free_server(s);
}

static server_t *server_of(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a known-answers server");
    return NULL;
  }
  return p;
}

static int32_t *int32_slot(napi_env env, napi_value arr, napi_value index) {
  napi_typedarray_type type;
  size_t len, off;
  void *data;
  napi_value ab;
  uint32_t i;
  if (napi_get_typedarray_info(env, arr, &type, &len, &data, &ab, &off) != napi_ok || type != napi_int32_array) return NULL;
  if (napi_get_value_uint32(env, index, &i) != napi_ok || i >= len) return NULL;
  return (int32_t *)data + i;
}

/* create(seq: Int32Array, seqIndex, stats: Int32Array, statsIndex, decide, handoff, closed) -> server */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t *seq = argc == 8 ? int32_slot(env, argv[0], argv[1]) : NULL;
  int32_t *stats = argc == 8 ? int32_slot(env, argv[2], argv[3]) : NULL;
  bool logging = false;
  napi_valuetype t4, t5, t6;
  if (!seq || !stats || napi_typeof(env, argv[4], &t4) != napi_ok || napi_typeof(env, argv[5], &t5) != napi_ok ||
      napi_typeof(env, argv[6], &t6) != napi_ok || t4 != napi_function || t5 != napi_function || t6 != napi_function ||
      napi_get_value_bool(env, argv[7], &logging) != napi_ok) {
    napi_throw_type_error(env, NULL, "create(seq, seqIndex, stats, statsIndex, decide, handoff, closed, logging)");
    return NULL;
  }
  server_t *s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  s->env = env;
  s->seq = seq;
  s->stats = stats;
  s->known_seq = -1;
  s->logging = logging;
  s->date_sec = -1;
  napi_create_reference(env, argv[0], 1, &s->seq_ref);
  napi_create_reference(env, argv[2], 1, &s->stats_ref);
  napi_create_reference(env, argv[4], 1, &s->decide);
  napi_create_reference(env, argv[5], 1, &s->handoff);
  napi_create_reference(env, argv[6], 1, &s->closed);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &s->resource);
  napi_create_string_utf8(env, "radioai:known-answers", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &s->async);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  s->live = 2; /* the timer and the JavaScript handle */
  uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  uv_unref((uv_handle_t *)&s->sweep);
  napi_add_env_cleanup_hook(env, on_env_cleanup, s);
  napi_value handle;
  napi_create_external(env, s, on_finalize, NULL, &handle);
  return handle;
}

/* take(server, fd, peeked: Uint8Array) -> whether the answerer owns the connection now. */
static napi_value js_take(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  server_t *s = argc == 4 ? server_of(env, argv[0]) : NULL;
  if (!s) return NULL;
  int32_t fd = -1;
  void *data = NULL;
  size_t len = 0, off;
  napi_typedarray_type type;
  napi_value ab, result;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[2], &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "take(server, fd, peeked, peer)");
    return NULL;
  }
  char peer[64];
  size_t peer_len = 0;
  if (napi_get_value_string_latin1(env, argv[3], peer, sizeof peer, &peer_len) != napi_ok) peer_len = 0;
  napi_get_boolean(env, false, &result);
  if (s->closing) return result;
  size_t head_len, tlen;
  int is_head;
  const char *t;
  if (parse(data, len, &head_len, &is_head, &t, &tlen, NULL) != 1) return result;
  check_seq(s);
  known_t tmp = { 0 };
  known_t *k = learn(s, is_head, t, tlen, &tmp);
  free(tmp.target);
  if (!k || s->closing) return result;
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return result;
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  if (uv_poll_init(loop, &c->poll, fd) != 0) {
    free(c);
    return result;
  }
  c->poll.data = c;
  c->fd = fd;
  c->srv = s;
  memcpy(c->peer, peer, peer_len);
  c->peer_len = (uint8_t)peer_len;
  c->active_ms = uv_now(loop);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->live++;
  uv_poll_start(&c->poll, UV_READABLE, on_io);
  napi_get_boolean(env, true, &result);
  return result;
}

/* The server of a call whose only argument is one (drain, drainLog, close). */
static server_t *only_server(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc == 1 ? server_of(env, argv[0]) : NULL;
}

/* Two numbers as a JavaScript array. */
static napi_value pair(napi_env env, napi_value a, napi_value b) {
  napi_value r;
  napi_create_array_with_length(env, 2, &r);
  napi_set_element(env, r, 0, a);
  napi_set_element(env, r, 1, b);
  return r;
}

/* drain(server) -> [answers, nanoseconds] since the last call. */
static napi_value js_drain(napi_env env, napi_callback_info info) {
  server_t *s = only_server(env, info);
  if (!s) return NULL;
  napi_value a, ns;
  napi_create_double(env, (double)s->answers, &a);
  napi_create_double(env, (double)s->answer_ns, &ns);
  napi_value r = pair(env, a, ns);
  s->answers = 0;
  s->answer_ns = 0;
  return r;
}

/* drainLog(server) -> [records (Buffer) or null, dropped] since the last call. */
static napi_value js_drain_log(napi_env env, napi_callback_info info) {
  server_t *s = only_server(env, info);
  if (!s) return NULL;
  napi_value recs, dropped;
  if (s->log_len) recs = buffer_of(env, s->log, s->log_len);
  else napi_get_null(env, &recs);
  napi_create_uint32(env, s->log_dropped, &dropped);
  napi_value r = pair(env, recs, dropped);
  s->log_len = 0;
  s->log_count = 0;
  s->log_dropped = 0;
  /* A burst's buffer is not kept for good. */
  if (s->log_cap > (1u << 20)) {
    free(s->log);
    s->log = NULL;
    s->log_cap = 0;
  }
  return r;
}

/* close(server): closes every connection it holds; take() refuses from then on. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  server_t *s = only_server(env, info);
  if (s) shut(s, 0);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "create", NULL, js_create, NULL, NULL, NULL, napi_enumerable, NULL },
    { "take", NULL, js_take, NULL, NULL, NULL, napi_enumerable, NULL },
    { "drain", NULL, js_drain, NULL, NULL, NULL, napi_enumerable, NULL },
    { "drainLog", NULL, js_drain_log, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
