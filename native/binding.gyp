{
  # Built from source by `npm ci` (package.json "install": node-gyp rebuild -C native),
  # against the Node headers npm is configured with (nodedir). No prebuilt downloads.
  "targets": [
    {
      "target_name": "enclave_native",
      "defines": ["_GNU_SOURCE", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["src/addon.c", "src/common.c", "src/fdio.c", "src/vsock.c", "src/nsm.c"]
        }, {
          "sources": ["src/unsupported.c"]
        }]
      ]
    }
  ]
}
