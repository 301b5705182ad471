# shellcheck shell=bash
# Pinned Debian packages for the image build (sourced by build-eif.sh and
# build/test-blobs.sh). Every .deb is checked against build/debs.lock before
# anything is taken out of it; downloads are cached under $DEB_CACHE.

# debs_for USE → "package version arch sha256" lines from the lock.
debs_for() {
  local use=$1
  awk -v use="$use" '$1 == use { print $2, $3, $4, $5 }' "$DEBS_LOCK"
}

# fetch_deb PACKAGE VERSION ARCH SHA256 → prints the path of the verified .deb.
fetch_deb() {
  local pkg=$1 ver=$2 arch=$3 want=$4
  local file="$DEB_CACHE/${pkg}_${ver//:/%3a}_${arch}.deb"
  mkdir -p "$DEB_CACHE"
  if [[ -f $file ]] && [[ $(sha256sum "$file" | cut -d' ' -f1) == "$want" ]]; then
    printf '%s\n' "$file"
    return 0
  fi
  local tmp
  tmp=$(mktemp -d "$DEB_CACHE/.dl.XXXXXX")
  # apt drops privileges to _apt; let it write here.
  chmod 0777 "$tmp" 2>/dev/null || true
  if ! (cd "$tmp" && apt-get download -q "${pkg}:${arch}=${ver}" >&2); then
    rm -rf "$tmp"
    echo "error: apt-get download ${pkg}=${ver} failed (is the version still in the archive? run apt-get update)" >&2
    return 1
  fi
  local got
  got=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)
  local have
  have=$(sha256sum "$got" | cut -d' ' -f1)
  if [[ $have != "$want" ]]; then
    rm -rf "$tmp"
    echo "error: ${pkg}=${ver} has sha256 $have, build/debs.lock pins $want; refusing it" >&2
    return 1
  fi
  mv "$got" "$file"
  rm -rf "$tmp"
  printf '%s\n' "$file"
}

# extract_debs USE DIR: fetch, verify and unpack every package of USE into DIR.
extract_debs() {
  local use=$1 dir=$2 pkg ver arch sha deb
  mkdir -p "$dir"
  while read -r pkg ver arch sha; do
    deb=$(fetch_deb "$pkg" "$ver" "$arch" "$sha") || return 1
    dpkg-deb -x "$deb" "$dir"
  done < <(debs_for "$use")
}

# extract_deb PACKAGE DIR: fetch, verify and unpack one pinned package (any use) into DIR.
extract_deb() {
  local want=$1 dir=$2 use pkg ver arch sha deb
  while read -r use pkg ver arch sha; do
    [[ $pkg == "$want" ]] || continue
    deb=$(fetch_deb "$pkg" "$ver" "$arch" "$sha") || return 1
    mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
    return 0
  done < <(awk '!/^#/ && NF == 5' "$DEBS_LOCK")
  echo "error: $want is not pinned in $DEBS_LOCK" >&2
  return 1
}
