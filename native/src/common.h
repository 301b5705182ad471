/*
 * Shared helpers for the enclave-signer native addon: argument parsing and
 * errors. Every failure becomes a JS exception carrying a `code` (an errno
 * name such as "ECONNREFUSED", or ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE for
 * bad arguments) so callers branch on codes, never on messages.
 */
#ifndef ENCLAVE_NATIVE_COMMON_H
#define ENCLAVE_NATIVE_COMMON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Throws Error{code: errno name, errno: -errnum (as node does), syscall}. Returns NULL for `return`. */
napi_value throw_errno(napi_env env, int errnum, const char *syscall);
/* Builds (does not throw) the same error object; used to reject promises. */
napi_value make_errno_error(napi_env env, int errnum, const char *syscall);
napi_value throw_type(napi_env env, const char *message);
napi_value throw_range(napi_env env, const char *message);

/* True when an exception is pending (a helper already threw). */
int pending(napi_env env);

/*
 * Reads an integer argument in [min, max]; throws ERR_INVALID_ARG_TYPE for a
 * non-number and ERR_OUT_OF_RANGE for a fraction, NaN or out-of-range value.
 * Returns 0 on success, -1 after throwing.
 */
int arg_int(napi_env env, napi_value v, const char *name, double min, double max, int64_t *out);

/* A Uint8Array/Buffer argument's bytes (not copied). Returns 0, or -1 after throwing. */
int arg_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);

/* Fetches exactly up to `max` args; missing ones are `undefined`. */
int get_args(napi_env env, napi_callback_info info, size_t max, napi_value *argv, size_t *argc, napi_value *self);

/* Clears memory in a way the compiler may not elide. */
void wipe_bytes(void *p, size_t n);

/* Module parts register their functions on `exports`. */
napi_status export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);
napi_status export_u32(napi_env env, napi_value obj, const char *name, uint32_t value);
napi_value init_fdio(napi_env env, napi_value exports);
napi_value init_vsock(napi_env env, napi_value exports);
napi_value init_nsm(napi_env env, napi_value exports);

#define NAPI_OK_OR_NULL(env, call)                                  \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      if (!pending(env)) napi_throw_error((env), "ERR_NAPI", #call); \
      return NULL;                                                  \
    }                                                               \
  } while (0)

#endif
