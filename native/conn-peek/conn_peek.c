/*
 * Looks at a TCP connection's first bytes without consuming them, so that
 * the front door can choose who serves the connection (uWebSockets.js for
 * short HTTP/1.1 requests, radiod's own Icecast-compatible code for
 * everything else) and hand over a socket whose request is still unread.
 *
 * watch(fd, onReadable) duplicates the accepted descriptor and polls the
 * duplicate on the calling thread's libuv loop (worker threads included; no
 * global state). When it becomes readable, polling stops and onReadable()
 * runs; JavaScript then reads the bytes waiting with peek() (recv with
 * MSG_PEEK: they stay in the kernel's queue). Polling is not restarted
 * while unread data waits, since a level-triggered poll would fire at once
 * again; for a head that arrives in pieces JavaScript peeks again later.
 * Then release() gives the duplicate descriptor to its new owner (uWS's
 * adoptSocket) or close() closes it. Closing one of two descriptors of a
 * connection sends nothing to the peer: the connection ends only when the
 * last one closes.
 *
 * The duplicate is closed on close(), when the handle is collected, or when
 * the thread's environment is torn down, whichever comes first, unless it
 * was released.
 *
 * guardTeardown() makes a worker thread safe to end at any moment. Node
 * aborts the whole process when a thread's loop closes with handles still
 * open, and uWebSockets.js leaves one poll handle per connection open when
 * its thread ends without closing its sockets (a crash, a watchdog's
 * terminate()). The guard runs when the thread's environment is torn down,
 * after Node has closed its own handles, and closes every poll handle still
 * open on the loop together with its descriptor, so the peer sees the
 * connection end and the process lives on.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  int fd;          /* the duplicate; -1 once released or closed */
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_cleanup_hook_handle hook;
  int poll_started; /* uv_poll_init done */
  int closing;      /* uv_close of the poll handle started */
  int poll_closed;  /* ... and finished */
  int finalized;    /* the JavaScript handle was collected */
} watch_t;

static void maybe_free(watch_t *w) {
  if (w->poll_closed && w->finalized) free(w);
}

static void on_poll_closed(uv_handle_t *h) {
  watch_t *w = h->data;
  w->poll_closed = 1;
  if (w->hook) {
    napi_remove_async_cleanup_hook(w->hook);
    w->hook = NULL;
  }
  maybe_free(w);
}

/* Stops polling for good; closes the descriptor unless `keep_fd`. */
static void finish(watch_t *w, int keep_fd) {
  if (w->closing) return;
  w->closing = 1;
  uv_poll_stop(&w->poll);
  /* uv_close removes the descriptor from epoll at once, before a new owner registers it. */
  uv_close((uv_handle_t *)&w->poll, on_poll_closed);
  if (!keep_fd && w->fd >= 0) close(w->fd);
  w->fd = -1;
}

static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  watch_t *w = arg;
  w->hook = handle;
  if (w->poll_closed) {
    napi_remove_async_cleanup_hook(handle);
    w->hook = NULL;
    return;
  }
  finish(w, 0);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  watch_t *w = data;
  w->finalized = 1;
  if (!w->closing) finish(w, 0);
  if (w->cb) {
    napi_delete_reference(env, w->cb);
    w->cb = NULL;
  }
  maybe_free(w);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  watch_t *w = h->data;
  if (w->closing) return;
  uv_poll_stop(&w->poll);
  napi_handle_scope scope;
  if (napi_open_handle_scope(w->env, &scope) != napi_ok) return;
  napi_value cb, recv, result;
  napi_get_reference_value(w->env, w->cb, &cb);
  napi_get_undefined(w->env, &recv);
  if (cb && napi_call_function(w->env, recv, cb, 0, NULL, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(w->env, &err);
    napi_fatal_exception(w->env, err);
  }
  napi_close_handle_scope(w->env, scope);
}

static watch_t *watch_of(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) {
    napi_throw_type_error(env, NULL, "not a conn-peek handle");
    return NULL;
  }
  return p;
}

static napi_value number(napi_env env, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  return v;
}

/*
 * The callback is not needed once watching has stopped; keeping the
 * reference until the handle is collected would keep the callback's
 * closure (which usually holds the handle) alive for ever.
 */
static void drop_callback(napi_env env, watch_t *w) {
  if (w->cb) {
    napi_delete_reference(env, w->cb);
    w->cb = NULL;
  }
}

/* watch(fd, onReadable) -> handle; throws when the descriptor cannot be duplicated. */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  napi_valuetype t;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "watch(fd, onReadable)");
    return NULL;
  }
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    napi_throw_error(env, errno == EMFILE ? "EMFILE" : "EIO", "cannot duplicate the connection's descriptor");
    return NULL;
  }
  watch_t *w = calloc(1, sizeof *w);
  if (!w) {
    close(dup);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  w->fd = dup;
  w->env = env;
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  if (uv_poll_init(loop, &w->poll, dup) != 0) {
    close(dup);
    free(w);
    napi_throw_error(env, "EIO", "cannot poll the connection");
    return NULL;
  }
  w->poll.data = w;
  w->poll_started = 1;
  napi_create_reference(env, argv[1], 1, &w->cb);
  napi_value handle;
  napi_create_external(env, w, on_finalize, NULL, &handle);
  napi_add_async_cleanup_hook(env, on_env_cleanup, w, &w->hook);
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  return handle;
}

/* peek(handle, Uint8Array) -> bytes waiting (copied, not consumed), 0 at end of stream, -errno. */
static napi_value js_peek(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = argc == 2 ? watch_of(env, argv[0]) : NULL;
  if (!w) return NULL;
  void *data = NULL;
  size_t len = 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "peek(handle, Uint8Array)");
    return NULL;
  }
  if (w->fd < 0) return number(env, -EBADF);
  ssize_t n;
  do n = recv(w->fd, data, len, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return number(env, n < 0 ? -errno : (double)n);
}

/* poll(handle): waits for readability again (after a peek found nothing). */
static napi_value js_poll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = argc == 1 ? watch_of(env, argv[0]) : NULL;
  if (w && !w->closing) uv_poll_start(&w->poll, UV_READABLE, on_readable);
  return NULL;
}

/* release(handle) -> fd: the caller owns the duplicate from now on. */
static napi_value js_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = argc == 1 ? watch_of(env, argv[0]) : NULL;
  if (!w) return NULL;
  int fd = w->fd;
  finish(w, 1);
  drop_callback(env, w);
  return number(env, fd);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = argc == 1 ? watch_of(env, argv[0]) : NULL;
  if (w) {
    finish(w, 0);
    drop_callback(env, w);
  }
  return NULL;
}

static void close_leftover_poll(uv_handle_t *h, void *arg) {
  if (h->type != UV_POLL || uv_is_closing(h)) return;
  uv_os_fd_t fd;
  int have_fd = uv_fileno(h, &fd) == 0;
  uv_close(h, NULL);
  if (have_fd) close(fd);
  ++*(int *)arg;
}

static void on_teardown(void *arg) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop((napi_env)arg, &loop) != napi_ok || !loop) return;
  int closed = 0;
  uv_walk(loop, close_leftover_poll, &closed);
}

/* guardTeardown(): once per thread; later calls do nothing. */
static napi_value js_guard_teardown(napi_env env, napi_callback_info info) {
  void *guarded = NULL;
  if (napi_get_instance_data(env, &guarded) == napi_ok && guarded) return NULL;
  napi_set_instance_data(env, (void *)1, NULL, NULL);
  napi_add_env_cleanup_hook(env, on_teardown, env);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "watch", NULL, js_watch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "peek", NULL, js_peek, NULL, NULL, NULL, napi_enumerable, NULL },
    { "poll", NULL, js_poll, NULL, NULL, NULL, napi_enumerable, NULL },
    { "release", NULL, js_release, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "guardTeardown", NULL, js_guard_teardown, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
