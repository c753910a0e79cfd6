/*
 * A source's bytes carried from its program's connection to the master's
 * Icecast without entering JavaScript, while nothing out of the ordinary
 * happens.
 *
 * A source program sends a piece at a time (an MP3 frame, about 400 bytes,
 * 38 times a second at 128 kbit/s); through node:net each piece woke the
 * worker's JavaScript, went through Node's Readable and Writable machinery
 * and back out, at a cost of a good part of a percent of a core for each
 * source, before the first listener. Here each piece is one recv(2) and one
 * send(2) from a poll on the worker's loop.
 *
 *   relay(in, out, stopped(leftover, why)) -> relay
 *       dup()s both descriptors and from then on reads what arrives on `in`
 *       and writes it to `out`. The caller keeps its own descriptors but
 *       must neither read `in` nor write `out` while the relay runs. An
 *       upstream that takes less than was read makes the relay hold the
 *       rest and stop reading until epoll says the upstream has room.
 *   take(relay) -> Buffer | null
 *       stops the relay and gives back what it read and had not written
 *       (null once it has stopped by itself and said so).
 *
 * The relay stops by itself at anything out of the ordinary, and says so
 * to stopped(leftover, why) after the poll that found it: why is 1 when
 * the program's side ended or failed (end of file, reset), 2 when the
 * upstream failed, 3 when the relay itself could not go on (epoll). Deciding what then happens (ending the upload, keeping
 * the audio for the next master) is JavaScript's, on its own sockets.
 *
 * Closing a duplicate sends nothing to the peer: the caller's descriptor
 * holds the connection. When the worker thread ends, the relays' duplicates
 * are closed with it.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 65536 /* bytes read from a program at once */
#define EVENTS 64   /* epoll events taken at once */
#define SIDE_IN 0u
#define SIDE_OUT 1u

enum { WHY_PROGRAM = 1, WHY_UPSTREAM = 2, WHY_RELAY = 3 };

typedef struct env_state env_t;

typedef struct relay {
  env_t *e;
  struct relay *prev, *next;
  int in, out;      /* the duplicates; -1 once closed */
  uint8_t *held;    /* CHUNK bytes, made with the relay: read from the program, not yet written upstream */
  uint32_t held_len, held_off;
  napi_ref stopped;
  int why;          /* why it stopped by itself, until JavaScript is told */
  int dead;         /* stopped, and JavaScript told (or it took the relay) */
} relay_t;

struct env_state {
  napi_env env;
  int epfd;
  uv_poll_t *poll;
  relay_t *relays;
  size_t nrelays;
  napi_ref resource;
  napi_async_context async;
  uint8_t *buf;     /* CHUNK bytes: one read's worth */
  relay_t **due;    /* stopped by themselves, to be told: room for every relay, made as each starts */
  size_t ndue, due_cap;
};

/* ---- one relay ---- */

static void unlink_relay(relay_t *r) {
  env_t *e = r->e;
  if (r->prev || r->next || e->relays == r) e->nrelays--;
  if (r->prev) r->prev->next = r->next;
  else if (e->relays == r) e->relays = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* Closes the duplicates. Out of the epoll set first: it keeps a descriptor while the caller's copy holds the socket open. */
static void close_fds(relay_t *r) {
  if (r->in >= 0) {
    epoll_ctl(r->e->epfd, EPOLL_CTL_DEL, r->in, NULL);
    close(r->in);
  }
  if (r->out >= 0) {
    epoll_ctl(r->e->epfd, EPOLL_CTL_DEL, r->out, NULL);
    close(r->out);
  }
  r->in = r->out = -1;
}

static int watch(relay_t *r, int op, int fd, uint32_t side, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(uintptr_t)r | side};
  return epoll_ctl(r->e->epfd, op, fd, &ev);
}

/* Reading the program while the upstream takes everything; writing what is held while it does not. */
static int arm(relay_t *r) {
  int holding = r->held_off < r->held_len;
  if (watch(r, EPOLL_CTL_MOD, r->in, SIDE_IN, holding ? 0 : EPOLLIN) != 0) return -1;
  return watch(r, EPOLL_CTL_MOD, r->out, SIDE_OUT, holding ? EPOLLOUT : 0);
}

/* Stops the relay by itself; JavaScript hears why after the poll. What is held stays, for it. */
static void halt(relay_t *r, int why) {
  if (r->why || r->dead) return;
  close_fds(r);
  r->why = why;
  r->e->due[r->e->ndue++] = r;
}

static void hold(relay_t *r, const uint8_t *data, size_t n) {
  memcpy(r->held, data, n);
  r->held_len = (uint32_t)n;
  r->held_off = 0;
}

/* The program sent something (or ended). */
static void pump(relay_t *r) {
  env_t *e = r->e;
  /*
   * Reading is off while bytes are held, so this is an error or a hang-up
   * on the program's side: the held bytes go back first, and Node reads
   * whatever the program sent after them. Reading on would put newer bytes
   * in place of, or ahead of, the held ones.
   */
  if (r->held_off < r->held_len) return halt(r, WHY_PROGRAM);
  ssize_t n = recv(r->in, e->buf, CHUNK, MSG_DONTWAIT);
  if (n == 0) return halt(r, WHY_PROGRAM);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return halt(r, WHY_PROGRAM);
  }
  ssize_t w = send(r->out, e->buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      /* Given back, for the next upstream. */
      hold(r, e->buf, (size_t)n);
      return halt(r, WHY_UPSTREAM);
    }
    w = 0;
  }
  if (w == n) return;
  hold(r, e->buf + w, (size_t)(n - w));
  if (arm(r) != 0) halt(r, WHY_RELAY);
}

/* The upstream has room for what is held (or failed). */
static void drain(relay_t *r, uint32_t got) {
  if (got & (EPOLLERR | EPOLLHUP)) return halt(r, WHY_UPSTREAM);
  if (r->held_off >= r->held_len) return;
  ssize_t w = send(r->out, r->held + r->held_off, r->held_len - r->held_off, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return halt(r, WHY_UPSTREAM);
  }
  r->held_off += (uint32_t)w;
  if (r->held_off < r->held_len) return;
  r->held_off = r->held_len = 0;
  if (arm(r) != 0) halt(r, WHY_RELAY);
}

/* What was read and not written, for JavaScript; nothing is held after. */
static napi_value leftover(napi_env env, relay_t *r) {
  napi_value buf;
  uint32_t n = r->held_len - r->held_off;
  void *copy;
  if (napi_create_buffer_copy(env, n, n ? r->held + r->held_off : (const void *)"", &copy, &buf) != napi_ok) buf = NULL;
  free(r->held);
  r->held = NULL;
  r->held_len = r->held_off = 0;
  return buf;
}

/* Stopped and accounted for: no callback any more, nothing held. */
static void bury(relay_t *r) {
  r->dead = 1;
  unlink_relay(r);
  free(r->held);
  r->held = NULL;
  if (r->stopped) napi_delete_reference(r->e->env, r->stopped);
  r->stopped = NULL;
}

/* ---- JavaScript hears of relays that stopped by themselves ---- */

static void tell(env_t *e) {
  if (e->ndue == 0) return;
  napi_env env = e->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value resource;
  napi_get_reference_value(env, e->resource, &resource);
  /* JavaScript may take other relays meanwhile (their entries are then cleared), or stop more: read the count each time. */
  for (size_t k = 0; k < e->ndue; k++) {
    relay_t *r = e->due[k];
    if (!r) continue;
    e->due[k] = NULL;
    napi_value cb = NULL, argv[2], result;
    argv[0] = leftover(env, r);
    napi_create_int32(env, r->why, &argv[1]);
    if (r->stopped) napi_get_reference_value(env, r->stopped, &cb);
    bury(r);
    if (!cb) continue;
    if (!argv[0]) napi_get_null(env, &argv[0]);
    napi_status st = napi_make_callback(env, e->async, resource, cb, 2, argv, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  e->ndue = 0;
  napi_close_handle_scope(env, scope);
}

/* ---- epoll ---- */

static void on_events(uv_poll_t *h, int status, int events) {
  env_t *e = h->data;
  struct epoll_event ev[EVENTS];
  int n = epoll_wait(e->epfd, ev, EVENTS, 0);
  for (int k = 0; k < n; k++) {
    relay_t *r = (relay_t *)(uintptr_t)(ev[k].data.u64 & ~(uint64_t)1);
    /* Stopped earlier in this batch: its other record may still be in it. */
    if (r->why || r->dead) continue;
    if ((ev[k].data.u64 & 1) == SIDE_OUT) drain(r, ev[k].events);
    else pump(r);
  }
  tell(e);
}

/* ---- lifetime ---- */

/* The thread is ending: the relays stop with it, untold. */
static void on_env_cleanup(void *data) {
  env_t *e = data;
  napi_env env = e->env;
  while (e->relays) {
    relay_t *r = e->relays;
    close_fds(r);
    bury(r);
  }
  napi_delete_reference(env, e->resource);
  napi_async_destroy(env, e->async);
  /* Closed without a callback and its few bytes left behind: libuv finishes the close after this library may be unloaded. */
  uv_close((uv_handle_t *)e->poll, NULL);
  close(e->epfd);
  free(e->due);
  free(e->buf);
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
  e->buf = malloc(CHUNK);
  uv_loop_t *loop;
  if (e->epfd < 0 || !e->poll || !e->buf || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, e->poll, e->epfd) != 0) {
    if (e->epfd >= 0) close(e->epfd);
    free(e->poll);
    free(e->buf);
    free(e);
    return NULL;
  }
  e->poll->data = e;
  uv_poll_start(e->poll, UV_READABLE, on_events);
  /* Relays alone do not keep a worker's loop alive: the sockets they borrow do. */
  uv_unref((uv_handle_t *)e->poll);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &e->resource);
  napi_create_string_utf8(env, "radioai:source-relay", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &e->async);
  napi_set_instance_data(env, e, NULL, NULL);
  /* A cleanup hook, not the instance data's finalizer: hooks run while the loop can still close handles. */
  napi_add_env_cleanup_hook(env, on_env_cleanup, e);
  return e;
}

/* The handle was collected. A relay still running has a live thread (the cleanup hook stops them all). */
static void on_finalize(napi_env env, void *data, void *hint) {
  relay_t *r = data;
  if (!r->dead) {
    close_fds(r);
    /* Still due to be told: the entry goes, since the relay does. */
    for (size_t k = 0; k < r->e->ndue; k++)
      if (r->e->due[k] == r) r->e->due[k] = NULL;
    bury(r);
  }
  free(r);
}

/* ---- the JavaScript interface ---- */

/* relay(in, out, stopped(leftover, why)) -> relay */
static napi_value js_relay(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t in, out;
  napi_valuetype t;
  if (argc != 3 || napi_get_value_int32(env, argv[0], &in) != napi_ok || in < 0 ||
      napi_get_value_int32(env, argv[1], &out) != napi_ok || out < 0 || in == out ||
      napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "source-relay: relay(in, out, stopped)");
    return NULL;
  }
  env_t *e = env_of(env);
  relay_t *r = e ? calloc(1, sizeof *r) : NULL;
  uint8_t *held = r ? malloc(CHUNK) : NULL;
  /* Room to be told about every relay at once, so that stopping never needs memory. */
  if (held && e->due_cap < e->nrelays + 1) {
    size_t cap = e->due_cap ? e->due_cap * 2 : 8;
    relay_t **d = realloc(e->due, cap * sizeof *d);
    if (d) {
      e->due = d;
      e->due_cap = cap;
    }
  }
  if (!held || e->due_cap < e->nrelays + 1) {
    free(held);
    free(r);
    napi_throw_error(env, "ENOMEM", "source-relay: no relay (out of memory, or no epoll)");
    return NULL;
  }
  r->e = e;
  r->held = held;
  r->in = fcntl(in, F_DUPFD_CLOEXEC, 0);
  r->out = r->in >= 0 ? fcntl(out, F_DUPFD_CLOEXEC, 0) : -1;
  /* Added with no events, then armed; whatever failed, close_fds() takes out and closes what there is. */
  napi_value handle;
  if (r->out < 0 || watch(r, EPOLL_CTL_ADD, r->in, SIDE_IN, 0) != 0 || watch(r, EPOLL_CTL_ADD, r->out, SIDE_OUT, 0) != 0 || arm(r) != 0 ||
      napi_create_reference(env, argv[2], 1, &r->stopped) != napi_ok) {
    int err = errno;
    close_fds(r);
    free(r->held);
    free(r);
    napi_throw_error(env, NULL, err == EBADF ? "source-relay: not an open descriptor" : "source-relay: cannot watch the descriptors");
    return NULL;
  }
  if (napi_create_external(env, r, on_finalize, NULL, &handle) != napi_ok) {
    close_fds(r);
    napi_delete_reference(env, r->stopped);
    free(r->held);
    free(r);
    napi_throw_error(env, NULL, "source-relay: no handle");
    return NULL;
  }
  r->next = e->relays;
  if (e->relays) e->relays->prev = r;
  e->relays = r;
  e->nrelays++;
  return handle;
}

/* take(relay) -> what it read and had not written, or null when it stopped by itself and said so */
static napi_value js_take(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], none;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  napi_valuetype t;
  if (argc != 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "source-relay: take(relay)");
    return NULL;
  }
  relay_t *r = p;
  napi_get_null(env, &none);
  if (r->dead) return none;
  env_t *e = r->e;
  close_fds(r);
  /* Stopped by itself but not yet told (JavaScript runs inside tell()): taking it is being told. */
  for (size_t k = 0; k < e->ndue; k++)
    if (e->due[k] == r) e->due[k] = NULL;
  napi_value out = leftover(env, r);
  bury(r);
  return out ? out : none;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"relay", NULL, js_relay, NULL, NULL, NULL, napi_default, NULL},
      {"take", NULL, js_take, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
