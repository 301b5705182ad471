/*
 * Non-blocking I/O on stream-socket file descriptors, plus a libuv poll
 * handle to learn when one is readable or writable.
 *
 * Why not hand the fd to `new net.Socket({ fd })`? Node picks the handle type
 * with uv_guess_handle(), which only knows AF_INET/AF_INET6 (TCP) and AF_UNIX
 * (pipe); an AF_VSOCK fd is "UNKNOWN" and net.Socket throws
 * ERR_INVALID_FD_TYPE. So the JS side builds its own Duplex from these
 * primitives: read()/writev() never block (-1 means "would block"), and a
 * uv_poll_t on the event loop says when to try again. Backpressure falls out
 * of that: we only watch for readability while the stream wants data, and a
 * write callback fires only once the kernel has taken every byte.
 */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#define MAX_IOV 64

/* read(fd, buf) → n > 0 bytes, 0 at end of stream, -1 when it would block. */
static napi_value fd_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  uint8_t *buf;
  size_t len;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  if (arg_bytes(env, argv[1], "buffer", &buf, &len) != 0) return NULL;
  if (len == 0) return throw_range(env, "buffer must not be empty");
  ssize_t n;
  do n = read((int)fd, buf, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) n = -1;
    else return throw_errno(env, errno, "read");
  }
  napi_value out;
  NAPI_OK_OR_NULL(env, napi_create_int64(env, (int64_t)n, &out));
  return out;
}

/*
 * writev(fd, chunks) → bytes the kernel took (possibly fewer than offered),
 * or -1 when it would block. Uses sendmsg(MSG_NOSIGNAL) so a peer that went
 * away is EPIPE, never SIGPIPE.
 */
static napi_value fd_writev(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "chunks must be an array of Uint8Array");
  uint32_t count;
  NAPI_OK_OR_NULL(env, napi_get_array_length(env, argv[1], &count));
  if (count == 0) return throw_range(env, "chunks must not be empty");
  if (count > MAX_IOV) count = MAX_IOV; /* the caller resubmits the rest */
  struct iovec iov[MAX_IOV];
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    NAPI_OK_OR_NULL(env, napi_get_element(env, argv[1], i, &el));
    uint8_t *p;
    size_t l;
    if (arg_bytes(env, el, "chunk", &p, &l) != 0) return NULL;
    iov[i].iov_base = p;
    iov[i].iov_len = l;
  }
  struct msghdr msg = {0};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  ssize_t n;
  do n = sendmsg((int)fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) n = -1;
    else return throw_errno(env, errno, "write");
  }
  napi_value out;
  NAPI_OK_OR_NULL(env, napi_create_int64(env, (int64_t)n, &out));
  return out;
}

/* shutdownWrite(fd): no more data from us (the peer reads end of stream). */
static napi_value fd_shutdown_write(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  if (shutdown((int)fd, SHUT_WR) != 0) return throw_errno(env, errno, "shutdown");
  return NULL;
}

/* close(fd). EINTR still releases the descriptor on Linux, so it is not an error. */
static napi_value fd_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  if (close((int)fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return NULL;
}

/* socketError(fd) → pending SO_ERROR as an errno (0 = none); reading it clears it. */
static napi_value fd_socket_error(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt((int)fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return throw_errno(env, errno, "getsockopt");
  napi_value out;
  NAPI_OK_OR_NULL(env, napi_create_int32(env, err, &out));
  return out;
}

/*
 * socketPair() → [fd, fd]: a connected AF_UNIX stream pair, non-blocking and
 * close-on-exec. The fd stream code is family-agnostic, so this lets it be
 * tested on any machine without touching AF_VSOCK.
 */
static napi_value fd_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return throw_errno(env, errno, "socketpair");
  napi_value arr, a, b;
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok || napi_create_int32(env, sv[0], &a) != napi_ok ||
      napi_create_int32(env, sv[1], &b) != napi_ok || napi_set_element(env, arr, 0, a) != napi_ok ||
      napi_set_element(env, arr, 1, b) != napi_ok) {
    close(sv[0]);
    close(sv[1]);
    if (!pending(env)) napi_throw_error(env, "ERR_NAPI", "socketPair: cannot build result");
    return NULL;
  }
  return arr;
}

/*
 * Poll handles. One per fd (libuv allows no more). Lifetime: created by
 * pollCreate(fd, callback), armed with pollSet(handle, events), released with
 * pollClose(handle). After pollClose returns the fd is no longer watched and
 * may be closed at once (uv_poll_stop removes it from epoll synchronously);
 * the memory goes when libuv's close callback runs.
 */
typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  int closing;   /* uv_close called */
  int uv_closed; /* libuv's close callback ran */
  int js_gone;   /* the JS external was finalized */
} poll_ctx;

static void poll_release(poll_ctx *ctx) {
  if (ctx->callback != NULL) {
    napi_delete_reference(ctx->env, ctx->callback);
    ctx->callback = NULL;
  }
  if (ctx->async_context != NULL) {
    napi_async_destroy(ctx->env, ctx->async_context);
    ctx->async_context = NULL;
  }
}

static void poll_on_close(uv_handle_t *h) {
  poll_ctx *ctx = (poll_ctx *)h->data;
  ctx->uv_closed = 1;
  poll_release(ctx);
  if (ctx->js_gone) free(ctx);
}

static void poll_begin_close(poll_ctx *ctx) {
  if (ctx->closing) return;
  ctx->closing = 1;
  uv_close((uv_handle_t *)&ctx->handle, poll_on_close);
}

static void poll_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poll_ctx *ctx = (poll_ctx *)data;
  ctx->js_gone = 1;
  if (ctx->uv_closed) free(ctx);
  else poll_begin_close(ctx); /* dropped without pollClose: stop watching; poll_on_close frees */
}

static void poll_on_event(uv_poll_t *h, int status, int events) {
  poll_ctx *ctx = (poll_ctx *)h->data;
  if (ctx->closing || ctx->callback == NULL) return;
  napi_env env = ctx->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2];
  if (napi_get_reference_value(env, ctx->callback, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok && /* make_callback needs an object receiver */
      napi_create_int32(env, status, &argv[0]) == napi_ok && napi_create_int32(env, events, &argv[1]) == napi_ok) {
    /* make_callback (not call_function): runs queued microtasks/nextTicks afterwards, like node's own I/O callbacks. */
    napi_status s = napi_make_callback(env, ctx->async_context, recv, cb, 2, argv, NULL);
    if (s == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static poll_ctx *get_poll(napi_env env, napi_value v) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    throw_type(env, "handle must be a poll handle from pollCreate()");
    return NULL;
  }
  return (poll_ctx *)data;
}

/* pollCreate(fd, callback(status, events)) → handle (idle until pollSet). */
static napi_value poll_create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) return throw_type(env, "callback must be a function");

  uv_loop_t *loop;
  NAPI_OK_OR_NULL(env, napi_get_uv_event_loop(env, &loop));
  poll_ctx *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return throw_errno(env, ENOMEM, "pollCreate");
  ctx->env = env;
  int r = uv_poll_init(loop, &ctx->handle, (int)fd);
  if (r != 0) {
    free(ctx);
    return throw_errno(env, -r, "uv_poll_init");
  }
  ctx->handle.data = ctx;

  napi_value name, external;
  if (napi_create_string_utf8(env, "enclave-signer:fdpoll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &ctx->async_context) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &ctx->callback) != napi_ok ||
      napi_create_external(env, ctx, poll_finalize, NULL, &external) != napi_ok) {
    poll_release(ctx);
    ctx->js_gone = 1;
    poll_begin_close(ctx);
    if (!pending(env)) napi_throw_error(env, "ERR_NAPI", "pollCreate: cannot set up the handle");
    return NULL;
  }
  return external;
}

/* pollSet(handle, events): watch for READABLE|WRITABLE (bit mask; 0 stops watching). */
static napi_value poll_set(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, NULL, NULL) != 0) return NULL;
  poll_ctx *ctx = get_poll(env, argv[0]);
  if (ctx == NULL) return NULL;
  int64_t events;
  if (arg_int(env, argv[1], "events", 0, UV_READABLE | UV_WRITABLE | UV_DISCONNECT, &events) != 0) return NULL;
  if (ctx->closing) return throw_errno(env, EBADF, "pollSet");
  int r = events == 0 ? uv_poll_stop(&ctx->handle) : uv_poll_start(&ctx->handle, (int)events, poll_on_event);
  if (r != 0) return throw_errno(env, -r, "uv_poll_start");
  return NULL;
}

/* pollClose(handle): stop watching now, free later. Idempotent. */
static napi_value poll_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  poll_ctx *ctx = get_poll(env, argv[0]);
  if (ctx == NULL) return NULL;
  poll_begin_close(ctx);
  return NULL;
}

napi_value init_fdio(napi_env env, napi_value exports) {
  if (export_fn(env, exports, "read", fd_read) != napi_ok || export_fn(env, exports, "writev", fd_writev) != napi_ok ||
      export_fn(env, exports, "shutdownWrite", fd_shutdown_write) != napi_ok || export_fn(env, exports, "close", fd_close) != napi_ok ||
      export_fn(env, exports, "socketError", fd_socket_error) != napi_ok || export_fn(env, exports, "socketPair", fd_socketpair) != napi_ok ||
      export_fn(env, exports, "pollCreate", poll_create) != napi_ok || export_fn(env, exports, "pollSet", poll_set) != napi_ok ||
      export_fn(env, exports, "pollClose", poll_close) != napi_ok)
    return NULL;
  return exports;
}
