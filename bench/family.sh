#!/usr/bin/env bash
# The python family with kiln, and the same family rendered by
# `kiln render` and built by buildah, in one run (optimize off).
#
#   bench/family.sh            # root; buildah, mmdebstrap, curl, bc
#
# Prints wall times and ratios (kiln / buildah) for a cold build, a no-op
# rebuild, and a one-param change (pkgrel), of the `python` target and
# everything it needs (base, debbase, pybuild, source, .deb, python). The
# pip targets stay out: buildah has no equivalent of `[build] host-ca`, so
# behind a TLS-intercepting proxy its pip steps cannot reach the index.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kiln=${KILN:-$here/../target/release/kiln}
work=$(mktemp -d /var/tmp/kiln-family-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$here/../stacks/python" "$work/stack"
store=$work/kiln-store
export BUILDAH="buildah --root $work/containers --runroot $work/run --storage-driver overlay"
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
export MIRROR=${MIRROR:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)}

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }

kiln_family() { $kiln --store "$store" build -C "$work/stack" python --progress quiet --set optimize=false "$@" >/dev/null; }
bah_family() {
    rm -rf "$work/rendered"
    $kiln render -C "$work/stack" -o "$work/rendered" python --set optimize=false "$@" >/dev/null
    sh "$work/rendered/build-with-buildah.sh"
}
measure() { local t0; t0=$(now); "$@" >/dev/null; elapsed "$t0" "$(now)"; }

k_cold=$(measure kiln_family)
b_cold=$(measure bah_family)
k_noop=$(measure kiln_family)
b_noop=$(measure bah_family)
k_param=$(measure kiln_family --set pkgrel=2)
b_param=$(measure bah_family --set pkgrel=2)

printf '\n%-30s %10s %10s %8s\n' "python target + deps" kiln buildah ratio
printf '%-30s %9.1fs %9.1fs %8s\n' "cold build" "$k_cold" "$b_cold" "$(ratio "$k_cold" "$b_cold")"
printf '%-30s %9.2fs %9.2fs %8s\n' "no-op rebuild" "$k_noop" "$b_noop" "$(ratio "$k_noop" "$b_noop")"
printf '%-30s %9.1fs %9.1fs %8s\n' "pkgrel change" "$k_param" "$b_param" "$(ratio "$k_param" "$b_param")"
