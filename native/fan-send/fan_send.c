/*
 * A hub's listeners on plain TCP, owned here: their descriptors, their
 * place in the stream, their ICY metadata, their backpressure and their
 * closes, so that a listener costs neither a node:net socket (a few KiB of
 * JavaScript objects each) nor a trip through JavaScript for each piece of
 * the stream it is sent.
 *
 * A crowd is one hub's listeners in one worker. It keeps its own copy of the
 * stream's recent bytes (a ring of `cap` bytes addressed by absolute offset,
 * the same offsets as the hub's ring in JavaScript, since both get every
 * piece), and each listener is an offset in it:
 *
 *   append(crowd, data)  copies data into the ring, then sends it to every
 *                        caught-up listener with one send(2) each
 *                        (MSG_DONTWAIT | MSG_NOSIGNAL); a listener whose
 *                        socket is full keeps its offset and is sent the
 *                        rest when epoll says it is writable; one the ring
 *                        has moved past (it lags by more than `cap`) is let
 *                        go, as Icecast lets go a client past its queue.
 *   add(crowd, fd, pos, first, icy)
 *                        takes a listener: dup(fd) (the caller then closes
 *                        its own descriptor, which sends nothing to the
 *                        peer while this one is open), `first` (bytes owed
 *                        before the stream: Ogg codec headers) and then the
 *                        stream from `pos`. Returns the listener's id, or
 *                        -1 when it was not taken (a position the ring
 *                        does not hold, no memory, or a connection already
 *                        gone): the caller's socket is then still its own.
 *   meta(crowd, block)   the ICY metadata block listeners that asked for it
 *                        get next: every `metaint` bytes of audio a listener
 *                        gets the block if it has not had this one, else a
 *                        lone zero byte, as Icecast does.
 *   close(crowd, id)     lets one listener go; returns the bytes it was sent.
 *   free(crowd)          lets every listener go and forgets the crowd.
 *   trim()               gives memory malloc keeps free back to the system
 *                        (malloc_trim): each listener arrives as a node:net
 *                        socket whose few KiB are freed at the hand-over, and
 *                        malloc would keep them for later.
 *
 * A listener that closes, resets or is let go for lagging is reported to
 * closed(id, bytes), the crowd's callback, after the call or poll that found
 * it. What listeners send is read and thrown away (they have nothing to
 * say); end of file or an error ends them.
 *
 * Each worker thread has one epoll set for all its crowds, polled on its
 * libuv loop. When the thread ends (a worker stopped or replaced) every
 * listener's descriptor is closed with it, so no client is left hanging.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define IOVS 16           /* pieces of one sendmsg: owed bytes, audio runs and metadata blocks */
#define EVENTS 256        /* epoll events taken at once */
#define DISCARD 4096      /* bytes read (and dropped) from a listener at once... */
#define DISCARD_READS 4   /* ...at most this many times per event: a client that floods gets its turn like others */
#define META_MAX (1 + 255 * 16)

typedef struct env_state env_t;
typedef struct crowd crowd_t;

typedef struct listener {
  crowd_t *crowd;
  int fd;
  uint32_t id;
  uint8_t blocked; /* waiting for EPOLLOUT */
  uint8_t icy;
  uint32_t until_meta; /* audio bytes before the next metadata block */
  uint32_t meta_gen;   /* the metadata block this listener had last */
  uint64_t pos;        /* absolute offset of the next stream byte it needs */
  double bytes;        /* bytes sent to it here */
  uint8_t *owed;       /* bytes due before the stream at pos (codec headers, the rest of a metadata block) */
  uint32_t owed_len, owed_off;
} listener_t;

typedef struct report {
  crowd_t *crowd;
  uint32_t id;
  double bytes;
} report_t;

struct crowd {
  env_t *e;
  crowd_t *prev, *next;
  uint8_t *ring;
  uint64_t cap, end, held; /* bytes [end - held, end) are in the ring, at offset % cap */
  listener_t **slots;
  uint32_t nslots, slots_cap;
  uint32_t *free_ids;
  uint32_t nfree, free_cap;
  uint32_t count;
  uint32_t metaint;
  uint8_t meta[META_MAX];
  uint32_t meta_len, meta_gen;
  double unreported; /* bytes sent outside append(), told at the next append() */
  napi_ref closed;
  int dead;
};

struct env_state {
  napi_env env;
  int epfd;
  uv_poll_t *poll;
  crowd_t *crowds;
  napi_ref resource;
  napi_async_context async;
  report_t *reports;
  size_t nreports, reports_cap;
  int flushing;
  int closing;
};

static const uint8_t NO_META = 0;

/* ---- the ring ---- */

static uint64_t ring_start(const crowd_t *c) {
  return c->end - c->held;
}

/* Copies n bytes at absolute offset off (held) out of the ring. */
static void ring_read(const crowd_t *c, uint64_t off, uint8_t *dst, uint64_t n) {
  uint64_t i = off % c->cap, first = c->cap - i < n ? c->cap - i : n;
  memcpy(dst, c->ring + i, first);
  memcpy(dst + first, c->ring, n - first);
}

static int ring_append(crowd_t *c, const uint8_t *data, uint64_t n) {
  if (n > c->cap) {
    /* A piece larger than the ring (an Ogg page of an odd stream): the ring grows to hold two. */
    uint64_t cap = n * 2, held = c->held;
    uint8_t *r = malloc(cap);
    if (!r) return 0;
    uint64_t start = ring_start(c);
    uint8_t *tmp = malloc(held ? held : 1);
    if (!tmp) {
      free(r);
      return 0;
    }
    ring_read(c, start, tmp, held);
    for (uint64_t k = 0; k < held; k++) r[(start + k) % cap] = tmp[k];
    free(tmp);
    free(c->ring);
    c->ring = r;
    c->cap = cap;
  }
  uint64_t i = c->end % c->cap, first = c->cap - i < n ? c->cap - i : n;
  memcpy(c->ring + i, data, first);
  memcpy(c->ring, data + first, n - first);
  c->end += n;
  c->held = c->held + n > c->cap ? c->cap : c->held + n;
  return 1;
}

/* ---- listeners ---- */

static void report(env_t *e, crowd_t *c, uint32_t id, double bytes) {
  if (e->nreports == e->reports_cap) {
    size_t cap = e->reports_cap ? e->reports_cap * 2 : 64;
    report_t *r = realloc(e->reports, cap * sizeof *r);
    if (!r) return; /* the id is never reused then: a leak of one slot, not a wrong report */
    e->reports = r;
    e->reports_cap = cap;
  }
  e->reports[e->nreports++] = (report_t){ c, id, bytes };
}

static void release_id(crowd_t *c, uint32_t id) {
  if (c->nfree == c->free_cap) {
    uint32_t cap = c->free_cap ? c->free_cap * 2 : 64;
    uint32_t *f = realloc(c->free_ids, cap * sizeof *f);
    if (!f) return;
    c->free_ids = f;
    c->free_cap = cap;
  }
  c->free_ids[c->nfree++] = id;
}

/* Ends a listener: its descriptor closed, its slot emptied; `told` when JavaScript asked (no report then). */
static double drop(listener_t *l, int told) {
  crowd_t *c = l->crowd;
  double bytes = l->bytes;
  epoll_ctl(c->e->epfd, EPOLL_CTL_DEL, l->fd, NULL);
  close(l->fd);
  c->slots[l->id] = NULL;
  c->count--;
  if (told) release_id(c, l->id);
  else report(c->e, c, l->id, bytes); /* its id is freed once JavaScript has heard */
  free(l->owed);
  free(l);
  return bytes;
}

/* Waits for the socket to take more (out) or not; false when epoll refused, and the listener cannot be served. */
static int arm(listener_t *l, int out) {
  if (l->blocked == out) return 1;
  struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = l };
  if (epoll_ctl(l->crowd->e->epfd, EPOLL_CTL_MOD, l->fd, &ev) != 0) return 0;
  l->blocked = (uint8_t)out;
  return 1;
}

enum { PART_OWED, PART_AUDIO, PART_META };

/*
 * Sends what the listener is owed and the stream from its offset, until it
 * has all or its socket is full. Returns the bytes sent, or -1 when the
 * listener was let go.
 */
static double flush(listener_t *l) {
  crowd_t *c = l->crowd;
  double sent = 0;
/* Ends the listener; what it was sent in this call is still counted. */
#define GIVE_UP() do { c->unreported += sent; drop(l, 0); return -1; } while (0)
  if (l->pos < ring_start(c)) GIVE_UP();
  for (;;) {
    struct iovec iov[IOVS];
    uint8_t kind[IOVS];
    int n = 0;
    size_t total = 0;
    if (l->owed_off < l->owed_len) {
      iov[n] = (struct iovec){ l->owed + l->owed_off, l->owed_len - l->owed_off };
      kind[n++] = PART_OWED;
    }
    uint64_t pos = l->pos, until = l->until_meta;
    /* The title goes once: later boundaries of the same send get the lone zero byte. */
    uint32_t had = l->meta_gen;
    while (n < IOVS && pos < c->end) {
      if (l->icy && until == 0) {
        int fresh = had != c->meta_gen;
        had = c->meta_gen;
        iov[n] = fresh ? (struct iovec){ c->meta, c->meta_len } : (struct iovec){ (void *)&NO_META, 1 };
        kind[n++] = PART_META;
        until = c->metaint;
        continue;
      }
      uint64_t i = pos % c->cap, run = c->end - pos;
      if (run > c->cap - i) run = c->cap - i;
      if (l->icy && run > until) run = until;
      iov[n] = (struct iovec){ c->ring + i, run };
      kind[n++] = PART_AUDIO;
      pos += run;
      if (l->icy) until -= run;
    }
    for (int k = 0; k < n; k++) total += iov[k].iov_len;
    if (total == 0) {
      if (!arm(l, 0)) GIVE_UP();
      return sent;
    }
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
    ssize_t r;
    do r = sendmsg(l->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!arm(l, 1)) GIVE_UP();
        return sent;
      }
      GIVE_UP();
    }
    l->bytes += (double)r;
    sent += (double)r;
    size_t left = (size_t)r;
    for (int k = 0; k < n; k++) {
      size_t len = iov[k].iov_len, took = left < len ? left : len;
      left -= took;
      if (kind[k] == PART_OWED) {
        l->owed_off += (uint32_t)took;
        if (l->owed_off == l->owed_len) {
          free(l->owed);
          l->owed = NULL;
          l->owed_len = l->owed_off = 0;
        }
      } else if (kind[k] == PART_AUDIO) {
        l->pos += took;
        if (l->icy) l->until_meta -= (uint32_t)took;
      } else if (took > 0) {
        /* A metadata block begun is the listener's: the rest is owed as it was, whatever comes next. */
        l->meta_gen = iov[k].iov_base == c->meta ? c->meta_gen : l->meta_gen;
        l->until_meta = c->metaint;
        if (took < len) {
          uint8_t *rest = malloc(len - took);
          if (!rest) GIVE_UP();
          memcpy(rest, (uint8_t *)iov[k].iov_base + took, len - took);
          free(l->owed);
          l->owed = rest;
          l->owed_len = (uint32_t)(len - took);
          l->owed_off = 0;
        }
      }
      if (took < len) break;
    }
    if ((size_t)r < total) {
      if (!arm(l, 1)) GIVE_UP();
      return sent;
    }
  }
#undef GIVE_UP
}

/* ---- JavaScript hears of closes ---- */

static void tell(env_t *e) {
  if (e->flushing || e->nreports == 0) return;
  e->flushing = 1;
  napi_env env = e->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value resource;
    napi_get_reference_value(env, e->resource, &resource);
    /* Reports may be added while JavaScript runs (it may close other listeners): read the count each time. */
    for (size_t k = 0; k < e->nreports; k++) {
      report_t r = e->reports[k];
      if (!r.crowd) continue;
      napi_value cb, argv[2], result;
      if (!e->closing && r.crowd->closed && napi_get_reference_value(env, r.crowd->closed, &cb) == napi_ok && cb) {
        napi_create_uint32(env, r.id, &argv[0]);
        napi_create_double(env, r.bytes, &argv[1]);
        napi_status st = napi_make_callback(env, e->async, resource, cb, 2, argv, &result);
        if (st == napi_pending_exception) {
          napi_value err;
          napi_get_and_clear_last_exception(env, &err);
          napi_fatal_exception(env, err);
        }
      }
      /* JavaScript may have freed the crowd meanwhile; then its entries were cleared. */
      if (e->reports[k].crowd) release_id(e->reports[k].crowd, r.id);
    }
    napi_close_handle_scope(env, scope);
  }
  e->nreports = 0;
  e->flushing = 0;
}

/* ---- epoll ---- */

static void on_events(uv_poll_t *h, int status, int events) {
  env_t *e = h->data;
  struct epoll_event ev[EVENTS];
  int n, rounds = 0;
  do {
    n = epoll_wait(e->epfd, ev, EVENTS, 0);
    for (int k = 0; k < n; k++) {
      listener_t *l = ev[k].data.ptr;
      uint32_t got = ev[k].events;
      crowd_t *c = l->crowd;
      int gone = (got & (EPOLLERR | EPOLLHUP)) != 0;
      if (!gone && (got & (EPOLLIN | EPOLLRDHUP))) {
        char buf[DISCARD];
        for (int reads = 0; reads < DISCARD_READS; reads++) {
          ssize_t r = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT);
          if (r > 0) continue;
          if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone = 1;
          break;
        }
      }
      /* One wait reports a descriptor once, and nothing is added before the next: a record dropped here is not seen again. */
      if (gone) {
        drop(l, 0);
        continue;
      }
      if (got & EPOLLOUT) {
        double s = flush(l);
        if (s > 0) c->unreported += s;
      }
    }
    /* A few rounds at most: listeners that keep sending are still ready next turn, after the loop's other work. */
  } while (n == EVENTS && ++rounds < 4);
  tell(e);
}

/* ---- lifetime ---- */

static void unlink_crowd(crowd_t *c) {
  env_t *e = c->e;
  if (c->prev) c->prev->next = c->next;
  else if (e->crowds == c) e->crowds = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* Lets every listener go (no reports) and frees what the crowd holds; the handle stays, dead. */
static void kill_crowd(crowd_t *c) {
  if (c->dead) return;
  c->dead = 1;
  env_t *e = c->e;
  for (uint32_t i = 0; i < c->nslots; i++)
    if (c->slots[i]) drop(c->slots[i], 1);
  for (size_t k = 0; k < e->nreports; k++)
    if (e->reports[k].crowd == c) e->reports[k].crowd = NULL;
  unlink_crowd(c);
  free(c->ring);
  free(c->slots);
  free(c->free_ids);
  c->ring = NULL;
  c->slots = NULL;
  c->free_ids = NULL;
  c->nslots = c->slots_cap = c->nfree = c->free_cap = 0;
  if (c->closed) napi_delete_reference(e->env, c->closed);
  c->closed = NULL;
}

/* The thread is ending: every listener's connection ends with it. */
static void on_env_cleanup(void *data) {
  env_t *e = data;
  napi_env env = e->env;
  e->closing = 1;
  while (e->crowds) kill_crowd(e->crowds);
  napi_delete_reference(env, e->resource);
  napi_async_destroy(env, e->async);
  /*
   * The poll handle is closed without a callback and its few bytes are left
   * behind: libuv finishes closing it after this library may have been
   * unloaded with the thread's environment, when no code of it may run.
   */
  uv_close((uv_handle_t *)e->poll, NULL);
  close(e->epfd);
  free(e->reports);
  free(e);
}

static env_t *env_of(napi_env env) {
  env_t *e = NULL;
  if (napi_get_instance_data(env, (void **)&e) == napi_ok && e) return e;
  e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->env = env;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  e->poll = malloc(sizeof *e->poll);
  uv_loop_t *loop;
  if (e->epfd < 0 || !e->poll || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, e->poll, e->epfd) != 0) {
    if (e->epfd >= 0) close(e->epfd);
    free(e->poll);
    free(e);
    return NULL;
  }
  e->poll->data = e;
  uv_poll_start(e->poll, UV_READABLE, on_events);
  /* Listeners alone do not keep a worker's loop alive: the hubs feeding them do. */
  uv_unref((uv_handle_t *)e->poll);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &e->resource);
  napi_create_string_utf8(env, "radioai:fan-send", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &e->async);
  napi_set_instance_data(env, e, NULL, NULL);
  /* A cleanup hook, not the instance data's finalizer: hooks run while the loop can still close handles. */
  napi_add_env_cleanup_hook(env, on_env_cleanup, e);
  return e;
}

/* The handle was collected. A crowd still alive has a live thread (the cleanup hook kills them all). */
static void on_finalize(napi_env env, void *data, void *hint) {
  crowd_t *c = data;
  if (!c->dead) kill_crowd(c);
  free(c);
}

/* ---- the JavaScript interface ---- */

static crowd_t *crowd_of(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "fan-send: not a crowd");
    return NULL;
  }
  crowd_t *c = p;
  if (c->dead) {
    napi_throw_error(env, NULL, "fan-send: the crowd was freed");
    return NULL;
  }
  return c;
}

static int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  void *p;
  if (napi_get_typedarray_info(env, v, &t, len, &p, &ab, &off) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "fan-send: expected a Uint8Array");
    return 0;
  }
  *data = p;
  return 1;
}

/* The arguments (crowd, bytes: Uint8Array) of append() and meta(); NULL when they are not (an exception is pending). */
static crowd_t *crowd_and_bytes(napi_env env, napi_callback_info info, uint8_t **data, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 2) {
    napi_throw_type_error(env, NULL, "fan-send: (crowd, bytes)");
    return NULL;
  }
  crowd_t *c = crowd_of(env, argv[0]);
  return c && bytes_of(env, argv[1], data, len) ? c : NULL;
}

static napi_value number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

/* crowd(cap, metaint, closed(id, bytes)) -> crowd */
static napi_value js_crowd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double cap = 0;
  uint32_t metaint = 0;
  napi_valuetype t;
  if (argc != 3 || napi_get_value_double(env, argv[0], &cap) != napi_ok || cap < 4096 || cap > (1u << 30) ||
      napi_get_value_uint32(env, argv[1], &metaint) != napi_ok || metaint == 0 ||
      napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "fan-send: crowd(cap, metaint, closed)");
    return NULL;
  }
  env_t *e = env_of(env);
  crowd_t *c = e ? calloc(1, sizeof *c) : NULL;
  uint8_t *ring = c ? malloc((size_t)cap) : NULL;
  if (!ring) {
    free(c);
    napi_throw_error(env, "ENOMEM", "fan-send: no crowd (out of memory, or no epoll)");
    return NULL;
  }
  c->e = e;
  c->ring = ring;
  c->cap = (uint64_t)cap;
  c->metaint = metaint;
  c->meta[0] = 0;
  c->meta_len = 1;
  napi_create_reference(env, argv[2], 1, &c->closed);
  c->next = e->crowds;
  if (e->crowds) e->crowds->prev = c;
  e->crowds = c;
  napi_value handle;
  napi_create_external(env, c, on_finalize, NULL, &handle);
  return handle;
}

/* add(crowd, fd, pos, first: Uint8Array, icy: boolean) -> id, or -1 when the listener could not be taken */
static napi_value js_add(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  crowd_t *c = argc == 5 ? crowd_of(env, argv[0]) : NULL;
  if (!c) return NULL;
  int32_t fd;
  double pos;
  uint8_t *first;
  size_t flen;
  bool icy;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || napi_get_value_double(env, argv[2], &pos) != napi_ok ||
      !bytes_of(env, argv[3], &first, &flen) || napi_get_value_bool(env, argv[4], &icy) != napi_ok) {
    napi_throw_type_error(env, NULL, "fan-send: add(crowd, fd, pos, first, icy)");
    return NULL;
  }
  /* A position outside what the ring holds would send bytes that are not the stream. */
  if (fd < 0 || !(pos >= (double)ring_start(c) && pos <= (double)c->end) || flen > UINT32_MAX) return number(env, -1);
  if (c->nfree == 0 && c->nslots == c->slots_cap) {
    uint32_t cap = c->slots_cap ? c->slots_cap * 2 : 64;
    listener_t **s = realloc(c->slots, cap * sizeof *s);
    if (!s) return number(env, -1);
    c->slots = s;
    c->slots_cap = cap;
  }
  listener_t *l = calloc(1, sizeof *l);
  uint8_t *owed = flen ? malloc(flen) : NULL;
  int mine = l && (!flen || owed) ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  if (mine < 0) {
    free(l);
    free(owed);
    return number(env, -1);
  }
  if (flen) memcpy(owed, first, flen);
  l->crowd = c;
  l->fd = mine;
  l->pos = (uint64_t)pos;
  l->icy = icy;
  l->until_meta = c->metaint;
  l->owed = owed;
  l->owed_len = (uint32_t)flen;
  struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = l };
  if (epoll_ctl(c->e->epfd, EPOLL_CTL_ADD, mine, &ev) != 0) {
    close(mine);
    free(l);
    free(owed);
    return number(env, -1);
  }
  l->id = c->nfree ? c->free_ids[--c->nfree] : c->nslots++;
  c->slots[l->id] = l;
  c->count++;
  uint32_t id = l->id;
  double s = flush(l);
  if (s < 0) {
    /*
     * Gone at once (reset before it was taken): not taken, and not reported,
     * since JavaScript has no id for it yet; Node's socket, still the
     * caller's, finds the connection ended on its own.
     */
    env_t *e = c->e;
    for (size_t k = e->nreports; k-- > 0;)
      if (e->reports[k].crowd == c && e->reports[k].id == id) {
        e->reports[k].crowd = NULL;
        release_id(c, id);
        break;
      }
    tell(e);
    return number(env, -1);
  }
  c->unreported += s;
  tell(c->e);
  return number(env, id);
}

/* append(crowd, data: Uint8Array) -> bytes sent to listeners since the last append */
static napi_value js_append(napi_env env, napi_callback_info info) {
  uint8_t *data;
  size_t len;
  crowd_t *c = crowd_and_bytes(env, info, &data, &len);
  if (!c) return NULL;
  uint64_t was = c->end;
  if (!ring_append(c, data, len)) {
    napi_throw_error(env, "ENOMEM", "fan-send: out of memory");
    return NULL;
  }
  double sent = c->unreported;
  c->unreported = 0;
  uint64_t start = ring_start(c);
  for (uint32_t i = 0; i < c->nslots; i++) {
    listener_t *l = c->slots[i];
    if (!l) continue;
    if (l->blocked) {
      /* Behind by more than the ring: its bytes are gone, and so is it. */
      if (l->pos < start) drop(l, 0);
      continue;
    }
    if (l->pos == was && !l->icy && l->owed_len == 0) {
      /* Caught up: the new piece is all it needs, in one send from the caller's buffer. */
      ssize_t r;
      do r = send(l->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      while (r < 0 && errno == EINTR);
      if (r == (ssize_t)len) {
        l->pos = c->end;
        l->bytes += (double)len;
        sent += (double)len;
        continue;
      }
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        drop(l, 0);
        continue;
      }
      if (r > 0) {
        l->pos += (uint64_t)r;
        l->bytes += (double)r;
        sent += (double)r;
      }
      if (!arm(l, 1)) drop(l, 0);
      continue;
    }
    double s = flush(l);
    if (s > 0) sent += s;
  }
  tell(c->e);
  return number(env, sent);
}

/* meta(crowd, block: Uint8Array): the metadata block (length byte and text) listeners get from now on */
static napi_value js_meta(napi_env env, napi_callback_info info) {
  uint8_t *data;
  size_t len;
  crowd_t *c = crowd_and_bytes(env, info, &data, &len);
  if (!c) return NULL;
  if (len == 0 || len > META_MAX || len != 1 + (size_t)data[0] * 16) {
    napi_throw_range_error(env, NULL, "fan-send: a metadata block is a length byte L and L*16 bytes");
    return NULL;
  }
  memcpy(c->meta, data, len);
  c->meta_len = (uint32_t)len;
  c->meta_gen++;
  return NULL;
}

/* close(crowd, id) -> the bytes it was sent here, or -1 when it had already gone */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  crowd_t *c = argc == 2 ? crowd_of(env, argv[0]) : NULL;
  uint32_t id;
  if (!c) return NULL;
  if (napi_get_value_uint32(env, argv[1], &id) != napi_ok) {
    napi_throw_type_error(env, NULL, "fan-send: close(crowd, id)");
    return NULL;
  }
  if (id >= c->nslots || !c->slots[id]) return number(env, -1);
  return number(env, drop(c->slots[id], 1));
}

/* free(crowd): every listener let go, unreported; the crowd cannot be used again */
static napi_value js_free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  crowd_t *c = argc == 1 ? crowd_of(env, argv[0]) : NULL;
  if (c) kill_crowd(c);
  return NULL;
}

/* trim() -> whether memory went back to the system (malloc_trim) */
static napi_value js_trim(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_get_boolean(env, malloc_trim(0) != 0, &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } fns[] = {
    { "crowd", js_crowd }, { "add", js_add }, { "append", js_append },
    { "meta", js_meta }, { "close", js_close }, { "free", js_free }, { "trim", js_trim },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
