"""The dump's header: what an S3 object is (a pg_dump custom/tar archive, a plain SQL script, something else), read
from its first bytes before anything is restored."""

from __future__ import annotations

import re
from dataclasses import dataclass

# --------------------------------------------------------------------------- the dump's header


class NotADump(ValueError):
    """The object is not a pg_dump custom-format archive (the message says what it looks like instead)."""


@dataclass(frozen=True)
class DumpHeader:
    archive_version: str
    format: str
    compression: str
    created: str | None
    dbname: str | None
    server_version: str | None
    pg_dump_version: str | None


_FORMATS = {1: "custom", 3: "tar", 4: "null", 5: "directory"}
_COMPRESSION = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}


def sniff(buf: bytes) -> str:
    """What a non-dump object looks like (for the FAIL message)."""
    if not buf:
        return "an empty object (0 bytes)"
    magic = {
        b"\x1f\x8b": "gzip-compressed data (a gzipped plain-SQL dump?)",
        b"BZh": "bzip2-compressed data",
        b"\x28\xb5\x2f\xfd": "zstd-compressed data",
        b"\xfd7zXZ\x00": "xz-compressed data",
        b"PK\x03\x04": "a zip archive",
    }
    for m, what in magic.items():
        if buf.startswith(m):
            return what
    if len(buf) >= 262 and buf[257:262] == b"ustar":
        return "a tar archive (pg_dump -Ft? golive streams custom-format -Fc archives)"
    head = buf[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        stripped = text.lstrip()
        if stripped.startswith("<"):
            return "an HTML/XML document (an error page stored as the backup?)"
        if stripped.startswith("--") or re.search(r"\b(CREATE|SET|COPY|INSERT)\b", text):
            return "a plain-text SQL dump (psql restores those; pg_restore needs pg_dump -Fc)"
        return "a text file, not a pg_dump archive"
    return f"unknown binary data (first bytes {buf[:8].hex()})"


def parse_header(buf: bytes) -> DumpHeader:
    """The archive header of a pg_dump custom-format dump (pg_backup_archiver.c ReadHead), from its first bytes."""
    if not buf.startswith(b"PGDMP"):
        raise NotADump(sniff(buf))
    pos = 5

    def byte() -> int:
        nonlocal pos
        if pos >= len(buf):
            raise NotADump("a pg_dump archive cut inside its header")
        pos += 1
        return buf[pos - 1]

    vmaj, vmin = byte(), byte()
    vrev = byte() if (vmaj, vmin) > (1, 0) else 0
    version = (vmaj, vmin, vrev)
    if version < (1, 10, 0):
        raise NotADump(f"a pg_dump archive of version {vmaj}.{vmin}: too old to read the header (< 1.10)")
    int_size = byte()
    byte()  # offset size
    fmt = byte()

    def read_int() -> int:
        nonlocal pos
        sign = byte()
        if pos + int_size > len(buf):
            raise NotADump("a pg_dump archive cut inside its header")
        val = int.from_bytes(buf[pos : pos + int_size], "little")
        pos += int_size
        return -val if sign else val

    def read_str() -> str | None:
        nonlocal pos
        n = read_int()
        if n < 0:
            return None
        if pos + n > len(buf):
            raise NotADump("a pg_dump archive cut inside its header")
        pos += n
        return buf[pos - n : pos].decode("utf-8", errors="replace")

    if version >= (1, 15, 0):
        comp = _COMPRESSION.get(byte(), "unknown")
    else:
        level = read_int()
        comp = "none" if level == 0 else f"gzip (level {level})"
    sec, minute, hour, mday, mon, year, _dst = (read_int() for _ in range(7))
    dbname = read_str()
    server, dumper = read_str(), read_str()
    created = f"{year + 1900:04d}-{mon + 1:02d}-{mday:02d} {hour:02d}:{minute:02d}:{sec:02d}"
    return DumpHeader(
        archive_version=f"{vmaj}.{vmin}-{vrev}",
        format=_FORMATS.get(fmt, f"unknown ({fmt})"),
        compression=comp,
        created=created,
        dbname=dbname,
        server_version=server,
        pg_dump_version=dumper,
    )
