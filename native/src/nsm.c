/*
 * The Nitro Secure Module's raw ioctl on /dev/nsm, as the aws-nitro-enclaves-
 * nsm-api driver (src/driver/mod.rs) and Linux's drivers/misc/nsm.c define it:
 * one message of two iovecs, the CBOR request (≤ 0x1000 bytes) and a
 * 0x3000-byte response buffer whose length the kernel rewrites to the size of
 * the CBOR response. CBOR encoding/decoding stays in TypeScript.
 *
 * nsmProcess runs the ioctl on libuv's thread pool (the device can take
 * milliseconds to produce an attestation document, and the event loop keeps
 * serving meanwhile); nsmProcessSync does the same on the calling thread.
 * Buffers are wiped before they are freed: responses can carry entropy.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NSM_REQUEST_MAX_SIZE 0x1000
#define NSM_RESPONSE_MAX_SIZE 0x3000

/* Same layout as struct iovec on LP64 and as the kernel's struct nsm_iovec. */
struct nsm_iovec {
  uint64_t addr;
  uint64_t len;
};
struct nsm_raw {
  struct nsm_iovec request;
  struct nsm_iovec response;
};
#define NSM_IOCTL_RAW _IOWR(0x0A, 0x0, struct nsm_raw)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int err;
  size_t req_len;
  size_t resp_len;
  uint8_t req[NSM_REQUEST_MAX_SIZE];
  uint8_t resp[NSM_RESPONSE_MAX_SIZE];
} nsm_job;

static void job_free(nsm_job *job) {
  wipe_bytes(job, sizeof *job);
  free(job);
}

static void job_run(nsm_job *job) {
  struct nsm_raw msg;
  msg.request.addr = (uint64_t)(uintptr_t)job->req;
  msg.request.len = job->req_len;
  msg.response.addr = (uint64_t)(uintptr_t)job->resp;
  msg.response.len = sizeof job->resp;
  int r;
  do r = ioctl(job->fd, NSM_IOCTL_RAW, &msg);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    job->err = errno;
    return;
  }
  /* The kernel never reports more than it was given room for; refuse rather than overread if it did. */
  if (msg.response.len > sizeof job->resp) {
    job->err = EPROTO;
    return;
  }
  job->err = 0;
  job->resp_len = (size_t)msg.response.len;
}

/* Validates (fd, request) and copies the request into a new job. NULL after throwing. */
static nsm_job *job_new(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, NULL, NULL) != 0) return NULL;
  int64_t fd;
  uint8_t *req;
  size_t len;
  if (arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd) != 0) return NULL;
  if (arg_bytes(env, argv[1], "request", &req, &len) != 0) return NULL;
  if (len == 0) {
    throw_range(env, "request must not be empty");
    return NULL;
  }
  if (len > NSM_REQUEST_MAX_SIZE) {
    /* What the driver itself answers for an oversized request. */
    throw_errno(env, EMSGSIZE, "nsmProcess");
    return NULL;
  }
  nsm_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    throw_errno(env, ENOMEM, "nsmProcess");
    return NULL;
  }
  job->fd = (int)fd;
  job->req_len = len;
  memcpy(job->req, req, len);
  return job;
}

static napi_value job_result(napi_env env, nsm_job *job) {
  napi_value out;
  void *data;
  if (napi_create_buffer_copy(env, job->resp_len, job->resp, &data, &out) != napi_ok) return NULL;
  return out;
}

/* nsmProcessSync(fd, request) → response bytes. */
static napi_value nsm_process_sync(napi_env env, napi_callback_info info) {
  nsm_job *job = job_new(env, info);
  if (job == NULL) return NULL;
  job_run(job);
  napi_value out = job->err != 0 ? throw_errno(env, job->err, "ioctl") : job_result(env, job);
  job_free(job);
  return out;
}

static void job_execute(napi_env env, void *data) {
  (void)env;
  job_run((nsm_job *)data);
}

static void job_complete(napi_env env, napi_status status, void *data) {
  nsm_job *job = (nsm_job *)data;
  napi_value value = NULL;
  int ok = 0;
  if (status != napi_ok) value = make_errno_error(env, ECANCELED, "ioctl");
  else if (job->err != 0) value = make_errno_error(env, job->err, "ioctl");
  else {
    value = job_result(env, job);
    ok = value != NULL;
    if (!ok) value = make_errno_error(env, ENOMEM, "nsmProcess");
  }
  if (value == NULL) napi_get_undefined(env, &value);
  if (ok) napi_resolve_deferred(env, job->deferred, value);
  else napi_reject_deferred(env, job->deferred, value);
  napi_delete_async_work(env, job->work);
  job_free(job);
}

/*
 * nsmProcess(fd, request) → Promise<response bytes>. The caller must keep fd
 * open until the promise settles (the ioctl runs on another thread).
 */
static napi_value nsm_process(napi_env env, napi_callback_info info) {
  nsm_job *job = job_new(env, info);
  if (job == NULL) return NULL;
  napi_value promise, name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    job_free(job);
    return NULL;
  }
  if (napi_create_string_utf8(env, "enclave-signer:nsm", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, job_execute, job_complete, job, &job->work) != napi_ok) {
    napi_value err = make_errno_error(env, ENOMEM, "nsmProcess");
    if (err != NULL) napi_reject_deferred(env, job->deferred, err);
    job_free(job);
    return promise;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_value err = make_errno_error(env, EAGAIN, "nsmProcess");
    if (err != NULL) napi_reject_deferred(env, job->deferred, err);
    napi_delete_async_work(env, job->work);
    job_free(job);
  }
  return promise;
}

/* nsmOpen(path = "/dev/nsm") → fd (read-write, close-on-exec). */
static napi_value nsm_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, NULL, NULL) != 0) return NULL;
  char path[PATH_MAX];
  napi_valuetype t;
  NAPI_OK_OR_NULL(env, napi_typeof(env, argv[0], &t));
  if (t == napi_undefined) strcpy(path, "/dev/nsm");
  else if (t != napi_string) return throw_type(env, "path must be a string");
  else {
    size_t len;
    NAPI_OK_OR_NULL(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &len));
    if (len == 0 || len >= sizeof path) return throw_range(env, "path must be 1..4095 bytes");
    NAPI_OK_OR_NULL(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len));
    if (strlen(path) != len) return throw_range(env, "path must not contain NUL");
  }
  int fd;
  do fd = open(path, O_RDWR | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return throw_errno(env, errno, "open");
  napi_value out;
  if (napi_create_int32(env, fd, &out) != napi_ok) {
    close(fd);
    return NULL;
  }
  return out;
}

napi_value init_nsm(napi_env env, napi_value exports) {
  if (export_fn(env, exports, "nsmOpen", nsm_open) != napi_ok || export_fn(env, exports, "nsmProcess", nsm_process) != napi_ok ||
      export_fn(env, exports, "nsmProcessSync", nsm_process_sync) != napi_ok)
    return NULL;
  return exports;
}
