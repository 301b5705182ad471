/*
 * Stand-in built on systems other than Linux: AF_VSOCK and /dev/nsm only
 * exist there. It loads (so `npm ci` succeeds everywhere) and says why it
 * cannot help; the JS loader turns that into NATIVE_ADDON_UNAVAILABLE.
 */
#define NAPI_VERSION 8
#include <node_api.h>

static napi_value init(napi_env env, napi_value exports) {
  napi_value reason;
  if (napi_create_string_utf8(env, "the enclave-signer native addon needs Linux (AF_VSOCK, /dev/nsm)", NAPI_AUTO_LENGTH, &reason) != napi_ok ||
      napi_set_named_property(env, exports, "unsupported", reason) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
