#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static const char *errno_name(int errnum, char *buf, size_t buflen) {
  /* libuv knows the names node itself uses for these errors (ECONNREFUSED, …). */
  const char *name = uv_err_name_r(-errnum, buf, buflen);
  if (name == NULL || strncmp(name, "Unknown", 7) == 0) {
    snprintf(buf, buflen, "ERRNO_%d", errnum);
    return buf;
  }
  return name;
}

napi_value make_errno_error(napi_env env, int errnum, const char *syscall) {
  char namebuf[64];
  char msg[256];
  const char *name = errno_name(errnum, namebuf, sizeof namebuf);
  /* Only ever called on the JS thread, so strerror's static buffer is not shared. */
  const char *desc = strerror(errnum);
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, name, desc);

  napi_value code, message, err, v;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok) return NULL;
  if (napi_create_error(env, code, message, &err) != napi_ok) return NULL;
  if (napi_create_int32(env, -errnum, &v) == napi_ok) napi_set_named_property(env, err, "errno", v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, err, "syscall", v);
  return err;
}

napi_value throw_errno(napi_env env, int errnum, const char *syscall) {
  napi_value err = make_errno_error(env, errnum, syscall);
  if (err != NULL) napi_throw(env, err);
  else if (!pending(env)) napi_throw_error(env, "ERR_NAPI", "cannot build an error object");
  return NULL;
}

napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

napi_value throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
  return NULL;
}

int pending(napi_env env) {
  bool p = false;
  napi_is_exception_pending(env, &p);
  return p ? 1 : 0;
}

int arg_int(napi_env env, napi_value v, const char *name, double min, double max, int64_t *out) {
  char msg[160];
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    throw_type(env, msg);
    return -1;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!isfinite(d) || floor(d) != d || d < min || d > max) {
    snprintf(msg, sizeof msg, "%s must be an integer in %.0f..%.0f", name, min, max);
    throw_range(env, msg);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

int arg_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  char msg[160];
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (is_ta) {
    napi_typedarray_type type;
    size_t length, offset;
    void *ptr;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &offset) != napi_ok) return -1;
    if (type == napi_uint8_array) {
      *data = (uint8_t *)ptr;
      *len = length;
      return 0;
    }
  }
  snprintf(msg, sizeof msg, "%s must be a Uint8Array", name);
  throw_type(env, msg);
  return -1;
}

int get_args(napi_env env, napi_callback_info info, size_t max, napi_value *argv, size_t *argc, napi_value *self) {
  size_t n = max;
  if (napi_get_cb_info(env, info, &n, argv, self, NULL) != napi_ok) return -1;
  if (argc != NULL) *argc = n;
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (size_t i = n; i < max; i++) argv[i] = undef;
  return 0;
}

void wipe_bytes(void *p, size_t n) {
  volatile uint8_t *v = (volatile uint8_t *)p;
  while (n--) *v++ = 0;
}

napi_status export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_status s = napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, exports, name, fn);
}

napi_status export_u32(napi_env env, napi_value obj, const char *name, uint32_t value) {
  napi_value v;
  napi_status s = napi_create_uint32(env, value, &v);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, obj, name, v);
}
