/*
 * enclave-signer's native addon: AF_VSOCK stream sockets, non-blocking fd I/O
 * with a libuv poll handle, and the NSM ioctl. Plain Node-API (stable ABI):
 * built once, it loads in any Node version from 18 on, including the pinned
 * runtime that goes into the enclave image.
 *
 * Loading it does nothing but register functions: no socket is opened and no
 * device is touched until JS asks.
 */
#include "common.h"

#include <linux/vm_sockets.h>
#include <uv.h>

static napi_value init(napi_env env, napi_value exports) {
  if (init_fdio(env, exports) == NULL || init_vsock(env, exports) == NULL || init_nsm(env, exports) == NULL) return NULL;

  napi_value constants;
  if (napi_create_object(env, &constants) != napi_ok) return NULL;
  if (export_u32(env, constants, "VMADDR_CID_ANY", VMADDR_CID_ANY) != napi_ok ||
      export_u32(env, constants, "VMADDR_CID_LOCAL", 1) != napi_ok ||
      export_u32(env, constants, "VMADDR_CID_HOST", VMADDR_CID_HOST) != napi_ok ||
      export_u32(env, constants, "VMADDR_PORT_ANY", VMADDR_PORT_ANY) != napi_ok ||
      export_u32(env, constants, "POLL_READABLE", UV_READABLE) != napi_ok ||
      export_u32(env, constants, "POLL_WRITABLE", UV_WRITABLE) != napi_ok ||
      export_u32(env, constants, "POLL_DISCONNECT", UV_DISCONNECT) != napi_ok ||
      export_u32(env, constants, "NSM_REQUEST_MAX_SIZE", 0x1000) != napi_ok ||
      export_u32(env, constants, "NSM_RESPONSE_MAX_SIZE", 0x3000) != napi_ok ||
      napi_set_named_property(env, exports, "constants", constants) != napi_ok)
    return NULL;

  napi_value abi;
  if (napi_create_uint32(env, 1, &abi) != napi_ok || napi_set_named_property(env, exports, "abiVersion", abi) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
