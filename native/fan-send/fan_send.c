/*
 * Sends one buffer to many TCP connections with one call from JavaScript.
 *
 * A hub hands each new piece of a stream to every listener that is caught
 * up. Through node:net each of those writes walks the stream machinery
 * (Writable state, a write request, callbacks) before the one send(2) that
 * does the work; with thousands of listeners that walk costs as much CPU as
 * the kernel's TCP path. Here JavaScript passes the descriptors of the
 * listeners whose Node stream has nothing queued, and this loop calls
 * send(2) on each, never blocking (MSG_DONTWAIT) and never raising SIGPIPE
 * (MSG_NOSIGNAL). What happened to each is written to `results`: the bytes
 * sent (all of them, or fewer when the socket's buffer filled) or -errno.
 * JavaScript hands whatever was not sent to the Node stream, which then
 * owns the descriptor's writes again until it drains, so bytes never
 * overtake each other.
 *
 * sendAll(fds: Int32Array, count: number, data: Uint8Array, results: Int32Array): undefined
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok || t != want) {
    napi_throw_type_error(env, NULL, "fan-send: wrong argument type");
    return 0;
  }
  return 1;
}

static napi_value send_all(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "fan-send: sendAll(fds, count, data, results)");
    return NULL;
  }
  int32_t *fds, *results;
  uint8_t *data;
  size_t nfds, nresults, len;
  uint32_t count;
  if (!typed(env, argv[0], napi_int32_array, (void **)&fds, &nfds)) return NULL;
  if (napi_get_value_uint32(env, argv[1], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "fan-send: count must be a number");
    return NULL;
  }
  if (!typed(env, argv[2], napi_uint8_array, (void **)&data, &len)) return NULL;
  if (!typed(env, argv[3], napi_int32_array, (void **)&results, &nresults)) return NULL;
  if (count > nfds || count > nresults) {
    napi_throw_range_error(env, NULL, "fan-send: count exceeds the arrays");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    ssize_t n;
    do n = send(fds[i], data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    results[i] = n < 0 ? -errno : (int32_t)n;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "sendAll", NAPI_AUTO_LENGTH, send_all, NULL, &fn);
  napi_set_named_property(env, exports, "sendAll", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
