#!/usr/bin/env bash
# Builds dist/kvwarm_<version>_<arch>.deb with dpkg-deb.
#
#   packaging/build-deb.sh            # release build + package
#   SKIP_BUILD=1 packaging/build-deb.sh   # package an existing .build/release/kvwarm
#
# The Swift standard library and Foundation are linked statically
# (--static-swift-stdlib), so the package depends only on Debian's libcurl4,
# libsystemd0 and the C/C++ runtime.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

version=$(sed -n 's/.*static let string = "\([^"]*\)".*/\1/p' Sources/KVWarm/Daemon/KVWarmVersion.swift)
[[ -n "$version" ]] || { echo "build-deb: cannot read the version from KVWarmVersion.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
out="$root/dist"
deb="$out/kvwarm_${version}_${arch}.deb"

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

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/kvwarm"

install -D -m 0755 "$bin" "$pkg/usr/bin/kvwarm"
strip --strip-unneeded "$pkg/usr/bin/kvwarm" 2>/dev/null || true
install -D -m 0644 "$here/kvwarm.service" "$pkg/lib/systemd/system/kvwarm.service"
install -D -m 0644 "$here/kvwarm@.service" "$pkg/lib/systemd/system/kvwarm@.service"
install -D -m 0644 "$here/kvwarm.catalog" "$pkg/usr/lib/systemd/catalog/kvwarm.catalog"
install -D -m 0644 "$here/sysusers.d/kvwarm.conf" "$pkg/usr/lib/sysusers.d/kvwarm.conf"
install -D -m 0644 "$here/tmpfiles.d/kvwarm.conf" "$pkg/usr/lib/tmpfiles.d/kvwarm.conf"
install -D -m 0644 "$here/config.example.json" "$pkg/etc/kvwarm/config.json"
install -D -m 0644 "$here/copyright" "$pkg/usr/share/doc/kvwarm/copyright"
install -D -m 0644 "$here/config.example.json" "$pkg/usr/share/doc/kvwarm/examples/config.json"
install -D -m 0644 "$here/llama-server.service.example" "$pkg/usr/share/doc/kvwarm/examples/llama-server.service"
if [[ -f README.md ]]; then install -D -m 0644 README.md "$pkg/usr/share/doc/kvwarm/README.md"; fi
mkdir -p "$pkg/usr/share/doc/kvwarm/docs"
for f in docs/*.md; do [[ -e "$f" ]] && install -m 0644 "$f" "$pkg/usr/share/doc/kvwarm/docs/"; done

# shared-library dependencies of the binary, as Debian package names
depends="libcurl4 (>= 7.74), libsystemd0, libc6, libstdc++6, libgcc-s1"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    mkdir -p "$stage/shlibs/debian"
    printf 'Source: kvwarm\n\nPackage: kvwarm\nArchitecture: any\n' > "$stage/shlibs/debian/control"
    if found=$(cd "$stage/shlibs" && dpkg-shlibdeps -O -e "$pkg/usr/bin/kvwarm" 2>/dev/null); then
        found=${found#shlibs:Depends=}
        [[ -n "$found" ]] && depends="$found"
    fi
fi
case "$depends" in *libcurl4*) ;; *) depends="$depends, libcurl4";; esac
case "$depends" in *libsystemd0*) ;; *) depends="$depends, libsystemd0";; esac

size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
mkdir -p "$pkg/DEBIAN"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: kvwarm
Version: $version
Architecture: $arch
Maintainer: kvwarm developers <kvwarm@localhost>
Installed-Size: $size
Depends: $depends
Recommends: systemd
Section: utils
Priority: optional
Description: keep llama.cpp's llama-server KV cache warm for prompt templates
 kvwarm watches prompt-template files with inotify and keeps llama-server's
 KV cache warm for each of them: after startup, after every edit and after
 the server restarts, restoring saved KV files where it can. It runs as a
 Type=notify systemd service that reports ready only once the startup warm
 has finished, and logs structured journald records for every stage.
CONTROL

echo /etc/kvwarm/config.json > "$pkg/DEBIAN/conffiles"

cat > "$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/kvwarm.conf
    elif ! getent passwd kvwarm >/dev/null; then
        adduser --system --group --home /var/lib/kvwarm --no-create-home kvwarm
    fi
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/kvwarm.conf || true
    fi
    if command -v journalctl >/dev/null 2>&1; then
        journalctl --update-catalog || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        # an upgrade restarts a running kvwarm; a fresh install is left stopped
        # until the config is edited and the unit enabled
        if [ -n "$2" ]; then
            systemctl try-restart kvwarm.service 'kvwarm@*.service' || true
        fi
    fi
fi
exit 0
POSTINST

cat > "$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop kvwarm.service 'kvwarm@*.service' || true
fi
exit 0
PRERM

cat > "$pkg/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    if command -v journalctl >/dev/null 2>&1; then
        journalctl --update-catalog || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
fi
if [ "$1" = purge ]; then
    # state only; KV files in llama-server's slot directory are left alone
    rm -rf /var/lib/kvwarm
    rmdir --ignore-fail-on-non-empty /etc/kvwarm/templates /etc/kvwarm 2>/dev/null || true
fi
exit 0
POSTRM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
dpkg-deb --build --root-owner-group "$pkg" "$deb"
echo "build-deb: wrote $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
