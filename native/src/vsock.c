/*
 * AF_VSOCK stream sockets: listen, accept, connect, addresses. Every socket
 * is created non-blocking and close-on-exec; the JS side drives it with the
 * poll handle in fdio.c.
 *
 * Nothing here runs at load time: loading the addon never opens a socket.
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

static int arg_cid_port(napi_env env, napi_value *argv, unsigned int *cid, unsigned int *port) {
  int64_t c, p;
  if (arg_int(env, argv[0], "cid", 0, UINT32_MAX, &c) != 0) return -1;
  if (arg_int(env, argv[1], "port", 0, UINT32_MAX, &p) != 0) return -1;
  *cid = (unsigned int)c;
  *port = (unsigned int)p;
  return 0;
}

static void fill_addr(struct sockaddr_vm *sa, unsigned int cid, unsigned int port) {
  memset(sa, 0, sizeof *sa);
  sa->svm_family = AF_VSOCK;
  sa->svm_cid = cid;
  sa->svm_port = port;
}

static int new_socket(void) { return socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

static napi_value addr_object(napi_env env, const struct sockaddr_vm *sa) {
  napi_value obj;
  NAPI_OK_OR_NULL(env, napi_create_object(env, &obj));
  NAPI_OK_OR_NULL(env, export_u32(env, obj, "cid", sa->svm_cid));
  NAPI_OK_OR_NULL(env, export_u32(env, obj, "port", sa->svm_port));
  return obj;
}

/* vsockListen(cid, port, backlog) → fd of a listening, non-blocking socket. */
static napi_value vsock_listen(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv, NULL, NULL) != 0) return NULL;
  unsigned int cid, port;
  int64_t backlog;
  if (arg_cid_port(env, argv, &cid, &port) != 0) return NULL;
  if (arg_int(env, argv[2], "backlog", 1, 65535, &backlog) != 0) return NULL;

  int fd = new_socket();
  if (fd < 0) return throw_errno(env, errno, "socket");
  struct sockaddr_vm sa;
  fill_addr(&sa, cid, port);
  const char *syscall = "bind";
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    syscall = "listen";
    if (listen(fd, (int)backlog) == 0) {
      napi_value out;
      if (napi_create_int32(env, fd, &out) == napi_ok) return out;
      close(fd);
      return NULL;
    }
  }
  int e = errno;
  close(fd);
  return throw_errno(env, e, syscall);
}

/*
 * vsockConnect(cid, port) → { fd, connected }. `connected: false` means the
 * connection is in progress: wait for the fd to become writable, then read
 * socketError(fd) (0 = connected). On failure the fd is already closed.
 */
static napi_value vsock_connect(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, NULL, NULL) != 0) return NULL;
  unsigned int cid, port;
  if (arg_cid_port(env, argv, &cid, &port) != 0) return NULL;

  int fd = new_socket();
  if (fd < 0) return throw_errno(env, errno, "socket");
  struct sockaddr_vm sa;
  fill_addr(&sa, cid, port);
  int r;
  do r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (r != 0 && errno == EINTR);
  int connected = r == 0;
  if (r != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "connect");
  }
  napi_value obj, v;
  if (napi_create_object(env, &obj) != napi_ok || napi_create_int32(env, fd, &v) != napi_ok ||
      napi_set_named_property(env, obj, "fd", v) != napi_ok || napi_get_boolean(env, connected, &v) != napi_ok ||
      napi_set_named_property(env, obj, "connected", v) != napi_ok) {
    close(fd);
    if (!pending(env)) napi_throw_error(env, "ERR_NAPI", "vsockConnect: cannot build result");
    return NULL;
  }
  return obj;
}

/*
 * vsockAccept(fd) → { fd, cid, port } of a new non-blocking connection, or
 * null when none is pending. Aborted handshakes are skipped.
 */
static napi_value vsock_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  int64_t lfd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &lfd) != 0) return NULL;
  struct sockaddr_vm sa;
  int fd;
  for (;;) {
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    fd = accept4((int)lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) break;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, errno, "accept");
  }
  napi_value obj = addr_object(env, &sa), v;
  if (obj == NULL || napi_create_int32(env, fd, &v) != napi_ok || napi_set_named_property(env, obj, "fd", v) != napi_ok) {
    close(fd);
    if (!pending(env)) napi_throw_error(env, "ERR_NAPI", "vsockAccept: cannot build result");
    return NULL;
  }
  return obj;
}

static napi_value vsock_name(napi_env env, napi_callback_info info, int peer) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  struct sockaddr_vm sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  int r = peer ? getpeername((int)fd, (struct sockaddr *)&sa, &len) : getsockname((int)fd, (struct sockaddr *)&sa, &len);
  if (r != 0) return throw_errno(env, errno, peer ? "getpeername" : "getsockname");
  if (sa.svm_family != AF_VSOCK) return throw_errno(env, EAFNOSUPPORT, peer ? "getpeername" : "getsockname");
  return addr_object(env, &sa);
}

/* vsockLocalAddress(fd) → { cid, port } (the real port after listening on VMADDR_PORT_ANY). */
static napi_value vsock_local_address(napi_env env, napi_callback_info info) { return vsock_name(env, info, 0); }
/* vsockRemoteAddress(fd) → { cid, port } of the peer. */
static napi_value vsock_remote_address(napi_env env, napi_callback_info info) { return vsock_name(env, info, 1); }


napi_value init_vsock(napi_env env, napi_value exports) {
  if (export_fn(env, exports, "vsockListen", vsock_listen) != napi_ok || export_fn(env, exports, "vsockConnect", vsock_connect) != napi_ok ||
      export_fn(env, exports, "vsockAccept", vsock_accept) != napi_ok ||
      export_fn(env, exports, "vsockLocalAddress", vsock_local_address) != napi_ok ||
      export_fn(env, exports, "vsockRemoteAddress", vsock_remote_address) != napi_ok)
    return NULL;
  return exports;
}
