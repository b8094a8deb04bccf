#!/usr/bin/env bash
# Builds dist/kvwarm_<version>_<arch>.deb with debhelper (dpkg-buildpackage).
#
#   packaging/build-deb.sh                       # release build + package + lintian
#   SKIP_BUILD=1 packaging/build-deb.sh          # package an existing release build
#   KVWARM_DEB_VERSION=0.1.0+1 packaging/build-deb.sh   # another version (upgrade tests)
#   LINTIAN=0 packaging/build-deb.sh             # without the lintian run
#
# The Swift standard library and Foundation are linked statically
# (--static-swift-stdlib), so the package depends only on Debian's libcurl4,
# libsystemd0 and the C/C++ runtime (found by dh_shlibdeps). Swift is not a
# Debian package, so the binary is built here, before packaging, and
# packaging/debian/rules only installs it. The files debhelper picks up by name
# (debian/kvwarm.service, kvwarm@.service, kvwarm.sysusers, kvwarm.tmpfiles,
# copyright, changelog) are copied from packaging/ into a staged source tree, so
# they exist once in the repository.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

version=$(sed -n 's/.*static let string = "\([^"]*\)".*/\1/p' Sources/KVWarm/Daemon/KVWarmVersion.swift)
[[ -n "$version" ]] || { echo "build-deb: cannot read the version from KVWarmVersion.swift" >&2; exit 1; }
version=${KVWARM_DEB_VERSION:-$version}
arch=$(dpkg --print-architecture)
out="$root/dist"

for tool in dpkg-buildpackage dh; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install debhelper dpkg-dev)" >&2; exit 1; }
done

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "build-deb: swift build -c release (static Swift runtime)…"
    swift build -c release --product kvwarm --static-swift-stdlib
fi
bin="$(swift build -c release --show-bin-path)/kvwarm"
[[ -x "$bin" ]] || { echo "build-deb: $bin is missing (run without SKIP_BUILD=1)" >&2; exit 1; }
if ldd "$bin" | grep -q 'libswift\|libFoundation\|libdispatch\|libBlocksRuntime'; then
    echo "build-deb: $bin still links Swift runtime libraries dynamically:" >&2
    ldd "$bin" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src="$tmp/kvwarm-$version"
mkdir -p "$src"/{bin,conf,catalog,docs,examples,man}
cp -r "$here/debian" "$src/debian"
install -m 0755 "$bin" "$src/bin/kvwarm"
install -m 0644 "$here/config.example.json" "$src/conf/config.json"
install -m 0644 "$here/kvwarm.catalog" "$src/catalog/kvwarm.catalog"
install -m 0644 "$here/kvwarm.1" "$src/man/kvwarm.1"
install -m 0644 docs/*.md "$src/docs/"
install -m 0644 README.md "$src/README.md"
install -m 0644 "$here/config.example.json" "$src/examples/config.json"
# disabled examples: nothing installs them as units
install -m 0644 "$here/llama-server.service.example" "$src/examples/llama-server.service"
install -m 0644 "$here/kubernetes/kvwarm-sidecar.yaml" "$src/examples/kvwarm-sidecar.yaml"
install -m 0644 "$here/kvwarm.service" "$src/debian/kvwarm.service"
install -m 0644 "$here/kvwarm@.service" "$src/debian/kvwarm@.service"
install -m 0644 "$here/sysusers.d/kvwarm.conf" "$src/debian/kvwarm.sysusers"
install -m 0644 "$here/tmpfiles.d/kvwarm.conf" "$src/debian/kvwarm.tmpfiles"
install -m 0644 "$here/copyright" "$src/debian/copyright"
cat > "$src/debian/changelog" <<CHANGELOG
kvwarm ($version) unstable; urgency=medium

  * Built from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "a source tree").

 -- kvwarm developers <kvwarm@example.org>  $(date -R)
CHANGELOG

echo "build-deb: dpkg-buildpackage -b…"
(cd "$src" && dpkg-buildpackage -b -us -uc --no-sign >"$tmp/build.log" 2>&1) || {
    tail -40 "$tmp/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed" >&2
    exit 1
}
deb="kvwarm_${version}_${arch}.deb"
mkdir -p "$out"
mv "$tmp/$deb" "$out/$deb"
echo "build-deb: wrote $out/$deb"
dpkg-deb --info "$out/$deb" | sed -n '/Package:/,$p'
if [[ "${LINTIAN:-1}" != 0 ]] && command -v lintian >/dev/null; then
    echo "build-deb: lintian (overrides, each with its reason: packaging/debian/kvwarm.lintian-overrides)"
    lintian --fail-on error,warning "$out/$deb"
fi
