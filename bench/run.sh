#!/usr/bin/env bash
# kiln vs buildah on the same Dockerfiles, in one run, on this machine.
#
#   bench/run.sh            # needs root, buildah, mmdebstrap, GNU time
#
# Prints wall times and ratios (kiln / buildah) for: a cold build, a
# no-op rebuild, and the time from the exit of a step that writes 500 MB
# to the image being in the store; and kiln's peak RSS during that build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kiln=${KILN:-$here/../target/release/kiln}
work=$(mktemp -d /var/tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
store=$work/kiln-store
bah=(buildah --root "$work/containers" --runroot "$work/run" --storage-driver overlay)
command -v /usr/bin/time >/dev/null || { echo "install GNU time: apt-get install time" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }

echo "== base image (mmdebstrap bookworm, imported into both)"
$kiln --store "$store" bootstrap debian bookworm debian:bookworm >/dev/null 2>&1
$kiln --store "$store" export debian:bookworm --format oci-archive -o "$work/base.tar"
"${bah[@]}" pull -q "oci-archive:$work/base.tar" >/dev/null
"${bah[@]}" tag "$("${bah[@]}" images -q | head -1)" docker.io/library/debian:bookworm

ctx=$work/ctx
mkdir -p "$ctx/src"
seq 1 20000 > "$ctx/src/numbers.txt"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-minimal >/dev/null && rm -rf /var/lib/apt/lists/*
COPY src/ /src/
RUN python3 -c 'print(sum(int(l) for l in open("/src/numbers.txt")))' > /sum
ENV APP=bench
CMD ["cat", "/sum"]
DOCKERFILE
# Two 500 MB layers: incompressible (the compressor's worst case) and
# real files (copies of /usr: binaries, text, symlinks).
cat > "$ctx/Dockerfile.random" <<'DOCKERFILE'
FROM debian:bookworm
RUN head -c 500000000 /dev/urandom > /big && date +%s.%N > /step-exit
DOCKERFILE
cat > "$ctx/Dockerfile.files" <<'DOCKERFILE'
FROM debian:bookworm
RUN mkdir /c && for i in 1 2 3 4 5 6 7; do cp -a /usr /c/usr$i; done && du -sh /c && date +%s.%N > /step-exit
DOCKERFILE

kiln_build() { $kiln --store "$store" build --progress quiet -t "bench:$1" -f "$ctx/$2" "$ctx" >/dev/null; }
bah_build() { "${bah[@]}" bud -q --layers --isolation chroot -t "bench:$1" -f "$ctx/$2" "$ctx" >/dev/null; }

t0=$(now); kiln_build cold Dockerfile; t1=$(now); kiln_cold=$(elapsed "$t0" "$t1")
t0=$(now); bah_build cold Dockerfile; t1=$(now); bah_cold=$(elapsed "$t0" "$t1")
t0=$(now); kiln_build cold Dockerfile; t1=$(now); kiln_noop=$(elapsed "$t0" "$t1")
t0=$(now); bah_build cold Dockerfile; t1=$(now); bah_noop=$(elapsed "$t0" "$t1")

# Big layers: step exit (stamped inside the step) to image in store.
big() {
    local kind=$1
    /usr/bin/time -f %M -o "$work/kiln-$kind.rss" $kiln --store "$store" build --progress quiet -t "bench:$kind" -f "$ctx/Dockerfile.$kind" "$ctx" >/dev/null
    local t1 k_exit b_exit c
    t1=$(now)
    k_exit=$($kiln --store "$store" run "bench:$kind" -- cat /step-exit)
    eval "kiln_$kind=$(elapsed "$k_exit" "$t1")"
    bah_build "$kind" "Dockerfile.$kind"
    t1=$(now)
    c=$("${bah[@]}" from -q "bench:$kind")
    b_exit=$("${bah[@]}" run --isolation chroot "$c" cat /step-exit)
    "${bah[@]}" rm "$c" >/dev/null
    eval "bah_$kind=$(elapsed "$b_exit" "$t1")"
    eval "rss_$kind=$(( $(cat "$work/kiln-$kind.rss") / 1024 ))"
}
big random
big files

printf '\n%-34s %10s %10s %8s\n' "" kiln buildah ratio
printf '%-34s %9.2fs %9.2fs %8s\n' "cold build" "$kiln_cold" "$bah_cold" "$(ratio "$kiln_cold" "$bah_cold")"
printf '%-34s %9.2fs %9.2fs %8s\n' "no-op rebuild" "$kiln_noop" "$bah_noop" "$(ratio "$kiln_noop" "$bah_noop")"
printf '%-34s %9.2fs %9.2fs %8s\n' "500 MB random: step exit -> stored" "$kiln_random" "$bah_random" "$(ratio "$kiln_random" "$bah_random")"
printf '%-34s %9.2fs %9.2fs %8s\n' "~550 MB of /usr: step exit -> stored" "$kiln_files" "$bah_files" "$(ratio "$kiln_files" "$bah_files")"
printf '%-34s %9s MB (random) %s MB (files)\n' "kiln peak RSS while committing" "$rss_random" "$rss_files"
