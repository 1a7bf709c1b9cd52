"""Code snapshots: the tar of a source folder that a run executes, named by the SHA-256 of
its bytes (docs/snapshots.md). Byte for byte the archive the CLI makes
(common/archive/snapshot.cc, tar_writer.cc), so a folder submitted from either is stored
once; test_sdk_e2e.py checks that against the CLI. Standard library only.

The archive depends only on names, contents, link targets and executable bits: entries
sorted by path (bytes), each folder before its contents; mtime, owner and group 0; folders
0755, files 0755 when their owner may execute them, else 0644; ustar headers with pax
headers for long names. What goes in: everything under the folder except `.git`, what the
ignore files exclude (`.droverignore` files when the folder has one, else `.gitignore`
files, git's syntax), symbolic links that may point outside the folder, and sockets,
fifos and devices (both with a warning).
"""

import hashlib
import os
import re
import stat
import tempfile
import warnings
from typing import List, NamedTuple, Optional, Tuple

from drover.exceptions import ParameterError

MAX_TOTAL_BYTES = 16 << 30
MAX_FILE_BYTES = 8 << 30
MAX_ENTRIES = 1_000_000


class Snapshot(NamedTuple):
    path: str  # the tar file (a temporary file; the caller removes it)
    digest: str  # "sha256:" + 64 hex digits
    size: int  # bytes of the tar
    files: int  # files, folders and links in it


def _pattern_regex(pattern: str) -> str:
    """git's glob syntax as a regex over one path (components separated by '/')."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                for cls, rx in (("[:digit:]", r"0-9"), ("[:alpha:]", "a-zA-Z"),
                                ("[:alnum:]", "a-zA-Z0-9"), ("[:space:]", r"\s"),
                                ("[:upper:]", "A-Z"), ("[:lower:]", "a-z")):
                    body = body.replace(cls, rx)
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class _Rule(NamedTuple):
    regex: "re.Pattern"
    negated: bool
    dir_only: bool


def _read_rules(path: str) -> List[_Rule]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    rules = []
    for line in lines:
        line = line.rstrip("\r")
        # Trailing spaces are ignored unless escaped.
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        regex = _pattern_regex(line)
        if not anchored:
            regex = "(?:.*/)?" + regex
        rules.append(_Rule(re.compile(regex + r"\Z", re.S), negated, dir_only))
    return rules


def _excluded(rule_sets: List[Tuple[str, List[_Rule]]], rel: str, is_dir: bool) -> Optional[bool]:
    """The verdict of the ignore files on `rel`: the deepest file that matches wins, and
    within a file the last matching line. None: no rule matched."""
    for base, rules in reversed(rule_sets):
        if base and not rel.startswith(base + "/"):
            continue
        sub = rel[len(base) + 1:] if base else rel
        for rule in reversed(rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(sub):
                return not rule.negated
    return None


def _link_stays_inside(rel: str, target: str) -> bool:
    """A link is kept when its target is relative, stays inside the tree, and has `..` only
    at its start."""
    if target.startswith("/") or not target:
        return False
    parts = target.split("/")
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    if any(p == ".." for p in parts[ups:]):
        return False
    depth = rel.count("/")  # folders above the link inside the tree
    return ups <= depth


def collect(directory: str) -> List[Tuple[str, os.stat_result]]:
    """The entries of the snapshot of `directory`: (relative path, lstat), sorted by path
    bytes. Raises ParameterError naming `source_directory` for a missing folder or a tree
    over the limits."""
    if not os.path.isdir(directory):
        raise ParameterError(f"source_directory: '{directory}' is not a folder")
    use_drover = os.path.exists(os.path.join(directory, ".droverignore"))
    ignore_name = ".droverignore" if use_drover else ".gitignore"
    entries = []
    total = 0

    def walk(rel_dir: str, rule_sets):
        nonlocal total
        full_dir = os.path.join(directory, rel_dir) if rel_dir else directory
        own = _read_rules(os.path.join(full_dir, ignore_name))
        if own:
            rule_sets = rule_sets + [(rel_dir, own)]
        try:
            names = sorted(os.listdir(full_dir))
        except OSError as e:
            raise ParameterError(f"source_directory: cannot list '{full_dir}': {e.strerror}")
        for name in names:
            if name == ".git":
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(full_dir, name)
            st = os.lstat(full)
            is_dir = stat.S_ISDIR(st.st_mode)
            if _excluded(rule_sets, rel, is_dir):
                continue
            if stat.S_ISLNK(st.st_mode):
                if not _link_stays_inside(rel, os.readlink(full)):
                    warnings.warn(f"snapshot: left out {rel}: a link that may point outside "
                                  "the folder; use a datastore for data that lives elsewhere")
                    continue
            elif not (is_dir or stat.S_ISREG(st.st_mode)):
                warnings.warn(f"snapshot: left out {rel}: not a file, folder or link")
                continue
            if stat.S_ISREG(st.st_mode):
                if st.st_size > MAX_FILE_BYTES:
                    raise ParameterError(f"source_directory: {rel} is over 8 GiB; read it "
                                         "through a datastore or add it to .droverignore")
                total += st.st_size
            entries.append((rel, st))
            if len(entries) > MAX_ENTRIES:
                raise ParameterError("source_directory: more than 1,000,000 files, folders "
                                     "and links; add what the job does not need to .droverignore")
            if is_dir:
                walk(rel, rule_sets)

    walk("", [])
    if total > MAX_TOTAL_BYTES:
        raise ParameterError("source_directory: over 16 GiB of files; add datasets and "
                             "checkpoints to .droverignore and read data through a datastore")
    entries.sort(key=lambda e: e[0].encode("utf-8", "surrogateescape"))
    return entries


_BLOCK = 512
_MAX_OCTAL11 = 0o77777777777
# The name of every PAX extended header: fixed, as common/archive/tar_writer.cc writes it.
_PAX_HEADER_NAME = b"././@PaxHeader"


def _pax_record(key: str, value: bytes) -> bytes:
    """One "LENGTH key=value\\n" record, LENGTH counting the whole record."""
    rest = len(key) + len(value) + 3
    length = rest + 1
    while len(str(length)) + rest != length:
        length = len(str(length)) + rest
    return str(length).encode() + b" " + key.encode() + b"=" + value + b"\n"


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _header(name: bytes, typeflag: bytes, mode: int, size: int, linkname: bytes = b"") -> bytes:
    """The header block(s) of one entry, byte for byte as drover's TarWriter writes them
    (common/archive/tar_writer.cc), so that the CLI and the SDK give a folder the same
    digest and droverd stores it once."""
    if typeflag == b"5":
        name += b"/"
    pax = b""
    if len(name) > 100:
        pax += _pax_record("path", name)
    if len(linkname) > 100:
        pax += _pax_record("linkpath", linkname)
    if size > _MAX_OCTAL11:
        pax += _pax_record("size", str(size).encode())
    out = b""
    if pax:
        out = _header(_PAX_HEADER_NAME, b"x", 0o644, len(pax)) + pax + _padding(len(pax))
    block = bytearray(_BLOCK)

    def put(offset: int, width: int, value: bytes):
        value = value[:width]
        block[offset:offset + len(value)] = value

    def octal(offset: int, width: int, value: int):
        put(offset, width, b"%0*o" % (width - 1, value))

    put(0, 100, name)
    octal(100, 8, mode & 0o7777)
    octal(108, 8, 0)
    octal(116, 8, 0)
    octal(124, 12, 0 if size > _MAX_OCTAL11 else size)
    octal(136, 12, 0)
    block[156:157] = typeflag
    put(157, 100, linkname)
    put(257, 6, b"ustar\0")
    put(263, 2, b"00")
    octal(329, 8, 0)
    octal(337, 8, 0)
    block[148:156] = b" " * 8
    checksum = sum(block)
    block[148:154] = b"%06o" % checksum
    block[154] = 0
    block[155] = 0x20
    return out + bytes(block)


def build(directory: str) -> Snapshot:
    """Packs `directory` into a temporary tar file. Raises ParameterError (see collect)."""
    entries = collect(directory)
    fd, path = tempfile.mkstemp(prefix="drover-snapshot-", suffix=".tar")
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            def write(data: bytes):
                nonlocal size
                digest.update(data)
                out.write(data)
                size += len(data)

            for rel, st in entries:
                name = rel.encode("utf-8", "surrogateescape")
                full = os.path.join(directory, rel)
                if stat.S_ISDIR(st.st_mode):
                    write(_header(name, b"5", 0o755, 0))
                elif stat.S_ISLNK(st.st_mode):
                    target = os.readlink(full).encode("utf-8", "surrogateescape")
                    write(_header(name, b"2", 0o777, 0, target))
                else:
                    mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                    with open(full, "rb") as f:
                        write(_header(name, b"0", mode, st.st_size))
                        left = st.st_size
                        while left > 0:
                            chunk = f.read(min(left, 1 << 20))
                            if not chunk:
                                raise ParameterError(f"source_directory: {rel} shrank while it "
                                                     "was packed; submit again")
                            write(chunk)
                            left -= len(chunk)
                        write(_padding(st.st_size))
            write(b"\0" * (2 * _BLOCK))
    except BaseException:
        os.unlink(path)
        raise
    return Snapshot(path=path, digest="sha256:" + digest.hexdigest(), size=size,
                    files=len(entries))
