#!/usr/bin/env bash
# Builds the enclave image twice, from two copies of this source tree in two
# different directories (different path lengths, different umask, different
# TMPDIR), and checks that the EIFs, their PCRs and the manifests are
# byte-identical. Exit 0 identical, 1 different (with the differing PCRs).
#
# usage: build/check-reproducible.sh [--blobs DIR] [build-eif.sh options…]
#   --blobs defaults to .cache/test-blobs (made by build/test-blobs.sh if absent);
#   --entry defaults to enclave/image-main.ts (what build-eif.sh bundles).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BLOBS=
ENTRY=
PASS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --blobs) BLOBS=$2; shift 2 ;;
    --entry) ENTRY=$2; shift 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
if [[ -z $BLOBS ]]; then
  BLOBS=$ROOT/.cache/test-blobs
  [[ -f $BLOBS/bzImage ]] || build/test-blobs.sh "$BLOBS"
fi
BLOBS=$(cd "$BLOBS" && pwd)
if [[ -z $ENTRY ]]; then
  ENTRY=enclave/image-main.ts
fi
# build-eif.sh needs a pinned CMK; an example ARN unless the caller passed one (it changes PCR2, not reproducibility).
if [[ " ${PASS[*]-} " != *" --kms-key-arn "* && " ${PASS[*]-} " != *" --enclave-config "* ]]; then
  PASS+=(--kms-key-arn "${REPRO_KMS_KEY_ARN:-arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000}")
fi
# build-eif.sh needs a signing policy; an example one unless the caller passed one (it changes PCR2, not reproducibility).
if [[ " ${PASS[*]-} " != *" --policy "* ]]; then
  PASS+=(--policy "${REPRO_POLICY:-$ROOT/examples/policy/hot-wallet.json}")
fi
# Resolve key/cert paths now: the builds run in other directories.
for i in "${!PASS[@]}"; do
  [[ -f ${PASS[$i]} ]] && PASS[$i]=$(cd "$(dirname "${PASS[$i]}")" && pwd)/$(basename "${PASS[$i]}")
done

COMMIT=$(git rev-parse HEAD 2>/dev/null || echo 0000000000000000000000000000000000000000)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export DEB_CACHE=${DEB_CACHE:-$ROOT/.cache/debs}

BASE=$ROOT/.cache/repro
rm -rf "$BASE"
A=$BASE/a/src
B=$BASE/bb/second/copy/src
mkdir -p "$A" "$B" "$BASE/tmp-a" "$BASE/tmp-b"

copy_tree() {
  local dst=$1
  # What a fresh clone would hold (tracked files, plus new files not yet committed).
  git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
    [[ -e $f || -L $f ]] || continue
    mkdir -p "$dst/$(dirname "$f")"
    cp -P "$f" "$dst/$f"
  done
  # Installed dependencies as `npm ci` would leave them (hard links: no copy cost).
  cp -al node_modules "$dst/node_modules" 2>/dev/null || cp -a node_modules "$dst/node_modules"
  if compgen -G 'native/build/Release/*.node' >/dev/null; then
    mkdir -p "$dst/native/build/Release"
    cp native/build/Release/*.node "$dst/native/build/Release/"
  fi
}

echo "== copying the source tree twice"
copy_tree "$A"
copy_tree "$B"

run_build() {
  local dir=$1 tmp=$2 mask=$3
  echo "== building in $dir (umask $mask)"
  (cd "$dir" && umask "$mask" && TMPDIR=$tmp ./build-eif.sh --blobs "$BLOBS" --entry "$ENTRY" --out "$dir/out" \
    --source-commit "$COMMIT" ${PASS[@]+"${PASS[@]}"} | sed 's/^/   /')
}
run_build "$A" "$BASE/tmp-a" 0022
run_build "$B" "$BASE/tmp-b" 0002

pcrs() { node -e 'const d=require(process.argv[1]); for (const [k,v] of Object.entries(d.Measurements)) console.log(k, v)' "$1"; }
# A signed manifest carries an ECDSA signature with a random nonce (attestation/manifest-signature.ts):
# for it, the signed document and the signer must be identical (signManifest checks its own signature).
same_signed_manifest() {
  node --input-type=module -e '
    import { readFileSync } from "node:fs";
    const [a, b] = process.argv.slice(1).map((f) => JSON.parse(readFileSync(f, "utf8")));
    if (!a.signature || !b.signature) process.exit(1);
    if (JSON.stringify(a.manifest) !== JSON.stringify(b.manifest) || a.signature.keyId !== b.signature.keyId) process.exit(1);
    process.exit(0);
  ' "$1" "$2"
}
status=0
for f in enclave.eif pcr-manifest.json describe.json; do
  ha=$(sha256sum "$A/out/$f" | cut -d' ' -f1)
  hb=$(sha256sum "$B/out/$f" | cut -d' ' -f1)
  if [[ $ha == "$hb" ]]; then echo "same      $f  $ha"
  elif [[ $f == pcr-manifest.json ]] && same_signed_manifest "$A/out/$f" "$B/out/$f"; then
    echo "same      $f  (identical manifest and signer; ECDSA signature values differ, as randomized ECDSA does)"
  else echo "DIFFERENT $f  $ha vs $hb"; status=1; fi
done
if [[ $status -ne 0 ]]; then
  diff <(pcrs "$A/out/describe.json") <(pcrs "$B/out/describe.json") || true
  echo "NOT reproducible" >&2
  exit 1
fi
pcrs "$A/out/describe.json"
echo "reproducible: two builds in different directories are byte-identical"
rm -rf "$BASE"
