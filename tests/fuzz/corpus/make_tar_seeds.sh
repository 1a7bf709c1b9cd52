#!/usr/bin/env bash
# Makes the tar seeds of the tar_reader and safe_extract fuzz targets with GNU tar and
# Python's tarfile: each format the reader knows (ustar, pax, GNU, v7), long names, links,
# and the hostile entries the extractor refuses. The seeds are checked in; rerun this only
# to change them (the output is deterministic). Usage: tests/fuzz/corpus/make_tar_seeds.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src/sub/deeper"
printf 'print("hi")\n' >"$tmp/src/main.py"
printf 'x' >"$tmp/src/sub/a.txt"
chmod 755 "$tmp/src/main.py"
ln -s ../main.py "$tmp/src/sub/link"
ln "$tmp/src/sub/a.txt" "$tmp/src/sub/hard"
long=$(printf 'n%.0s' {1..120})
printf 'l' >"$tmp/src/sub/deeper/$long"

# -b 1: 512-byte records, so the seeds are small.
common=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -b 1 -C "$tmp/src")
tar "${common[@]}" --format=gnu -cf "$tmp/gnu.tar" .
tar "${common[@]}" --format=pax --pax-option=delete=atime,delete=ctime -cf "$tmp/pax.tar" .
# ustar and v7 cannot hold the long name.
for format in ustar v7; do
  tar "${common[@]}" --format="$format" --exclude="./sub/deeper/$long" -cf "$tmp/$format.tar" .
done

python3 - "$tmp" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
def make(name, entries, fmt=tarfile.GNU_FORMAT):
    with tarfile.open(f"{out}/{name}.tar", "w", format=fmt) as tar:
        for info, data in entries:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    # tarfile pads to 10 KiB; keep the entries and the end-of-archive marker only.
    with open(f"{out}/{name}.tar", "r+b") as f:
        body = f.read().rstrip(b"\0")
        f.truncate((len(body) + 511) // 512 * 512 + 1024)
def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)
make("dotdot", [entry("../escape", data=b"x")])
make("absolute", [entry("/tmp/abs", data=b"x")])
make("link-out", [entry("l", tarfile.SYMTYPE, link="../../etc"), entry("l/x", data=b"x")])
make("link-abs", [entry("l", tarfile.SYMTYPE, link="/etc/passwd")])
make("hardlink-out", [entry("h", tarfile.LNKTYPE, link="/etc/passwd")])
make("file-then-below", [entry("f", data=b"x"), entry("f/x", data=b"y")])
make("duplicate", [entry("d", data=b"1"), entry("d", data=b"2")])
make("fifo", [entry("p", tarfile.FIFOTYPE)])
make("device", [entry("c", tarfile.CHRTYPE)])
make("setuid", [entry("s", data=b"#!/bin/sh\n", mode=0o4755), entry("dir/", tarfile.DIRTYPE, mode=0o1777)])
make("pax-long", [entry("p/" + "x" * 200, data=b"pax"), entry("q", tarfile.SYMTYPE, link="p/" + "y" * 150)],
     fmt=tarfile.PAX_FORMAT)
make("empty", [])
PY
head -c 700 "$tmp/ustar.tar" >"$tmp/truncated.tar"

for target in tar_reader safe_extract; do
  mkdir -p "$here/$target"
  cp "$tmp"/*.tar "$here/$target/"
done
ls -l "$here/tar_reader"
