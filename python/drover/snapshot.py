"""Code snapshots: the tar of a source folder that a run executes, named by the SHA-256 of
its bytes (docs/snapshots.md). Standard library only.

The archive depends only on names, contents, link targets and executable bits: entries
sorted by path (bytes), each folder before its contents; mtime, owner and group 0; folders
0755, files 0755 when their owner may execute them, else 0644; ustar headers with pax
headers for long names. What goes in: everything under the folder except `.git`, what the
ignore files exclude (`.droverignore` files when the folder has one, else `.gitignore`
files, git's syntax), symbolic links that may point outside the folder, and sockets,
fifos and devices (both with a warning).
"""

import hashlib
import io
import os
import re
import stat
import tarfile
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


def build(directory: str) -> Snapshot:
    """Packs `directory` into a temporary tar file. Raises ParameterError (see collect)."""
    entries = collect(directory)
    fd, path = tempfile.mkstemp(prefix="drover-snapshot-", suffix=".tar")
    digest = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self):
            return True

        def write(self, data):
            digest.update(data)
            return self.f.write(data)

    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _Hashing(raw)
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for rel, st in entries:
                    info = tarfile.TarInfo(rel)
                    info.mtime = 0
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    full = os.path.join(directory, rel)
                    if stat.S_ISDIR(st.st_mode):
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                    elif stat.S_ISLNK(st.st_mode):
                        info.type, info.mode = tarfile.SYMTYPE, 0o777
                        info.linkname = os.readlink(full)
                        tar.addfile(info)
                    else:
                        info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                        info.size = st.st_size
                        with open(full, "rb") as f:
                            tar.addfile(info, f)
        size = os.path.getsize(path)
    except BaseException:
        os.unlink(path)
        raise
    return Snapshot(path=path, digest="sha256:" + digest.hexdigest(), size=size,
                    files=len(entries))
