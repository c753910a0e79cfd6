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

typedef struct {
  int fd;
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

static void maybe_free(sock_t *s) {
  if (s->poll_closed && s->finalized) free(s);
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
  if (!s->closing) start_close(s);
  maybe_free(s);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  if (status < 0 || s->closing) return;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[1], result;
  napi_get_reference_value(s->env, s->cb, &cb);
  napi_get_undefined(s->env, &recv);
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
    for (int i = 0; i < n; i++) s->lens[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : msgs[i].msg_len;
    napi_create_uint32(s->env, (uint32_t)n, &argv[0]);
    if (napi_call_function(s->env, recv, cb, 1, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(s->env, &err);
      napi_fatal_exception(s->env, err);
      break;
    }
    if (n < BATCH) break;
  }
  napi_close_handle_scope(s->env, scope);
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

/* open(address, port, onBatch) -> { handle, in, lens, addrs, out, meta, batch, slot } */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char host[64] = {0};
  size_t hl = 0;
  uint32_t port = 0;
  napi_valuetype t;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hl) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &port) != napi_ok || port > 65535 ||
      napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "open(address, port, onBatch)");
    return NULL;
  }
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
  if (!s) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->fd = fd;
  s->env = env;
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  napi_create_reference(env, argv[2], 1, &s->cb);
  napi_value obj, handle, n;
  napi_create_object(env, &obj);
  napi_create_external(env, s, on_finalize, NULL, &handle);
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
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) {
    napi_throw_type_error(env, NULL, "not a udp-batch handle");
    return NULL;
  }
  return p;
}

/* send(handle, n): sends the n answers meta describes; returns how many the kernel took. */
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
    for (uint32_t i = 0; i < n; i++) {
      uint32_t off = s->meta[i * 3], len = s->meta[i * 3 + 1], slot = s->meta[i * 3 + 2];
      if (off > OUT_BYTES || len == 0 || len > OUT_BYTES - off || slot >= BATCH) continue;
      sa_family_t fam;
      memcpy(&fam, s->addrs + (size_t)slot * ADDR, sizeof fam);
      iov[k].iov_base = s->out + off;
      iov[k].iov_len = len;
      memset(&msgs[k], 0, sizeof msgs[k]);
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_name = s->addrs + (size_t)slot * ADDR;
      msgs[k].msg_hdr.msg_namelen = fam == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
      k++;
    }
    uint32_t done = 0;
    while (done < k) {
      int r = sendmmsg(s->fd, msgs + done, k - done, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        /* A full send buffer or an unreachable sender: lose this answer, as UDP may. */
        done++;
        continue;
      }
      done += (uint32_t)r;
      sent += (uint32_t)r;
    }
  }
  napi_create_uint32(env, sent, &res);
  return res;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = argc == 1 ? sock_of(env, argv[0]) : NULL;
  if (!s || s->closing) return NULL;
  start_close(s);
  napi_delete_reference(env, s->cb);
  for (int i = 0; i < B_COUNT; i++) napi_delete_reference(env, s->bufs[i]);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
