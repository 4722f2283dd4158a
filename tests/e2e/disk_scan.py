"""Looking for bytes in a Coffer data dir: every regular file under it (meta.sqlite and its -wal
and -shm, blobs/, tmp/, root.key...), read whole, as bytes. Used by the at-rest and key-destruction
tests, which look for secrets and plaintexts that must never be stored."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def scan(root: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """{label: [files (relative to root) holding needle]} for every label whose needle was found.
    Each file is read once; a file that disappears meanwhile (a blob being renamed) is skipped."""
    found: dict[str, list[str]] = {}
    for p in data_files(root):
        try:
            data = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        for label, needle in needles.items():
            assert needle, f"empty needle {label!r}"
            if needle in data:
                found.setdefault(label, []).append(str(p.relative_to(root)))
    return found


def forms(label: str, secret: bytes) -> dict[str, bytes]:
    """A secret as raw bytes, base64 (standard, with and without padding), and hex (both cases)."""
    b64 = base64.b64encode(secret)
    return {
        f"{label} (raw)": secret,
        f"{label} (base64)": b64,
        f"{label} (base64 unpadded)": b64.rstrip(b"="),
        f"{label} (hex)": secret.hex().encode(),
        f"{label} (HEX)": secret.hex().upper().encode(),
    }


def kv_rows(data_dir: Path, ns_prefix: str = "") -> list[tuple[str, str, str]]:
    """(ns, key, value) rows of DATA/meta.sqlite, read-only (the server may be running: a WAL
    database is readable beside its writer)."""
    uri = f"file:{Path(data_dir) / 'meta.sqlite'}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT ns, key, value FROM kv WHERE ns >= ? ORDER BY ns, key", (ns_prefix,)
        ).fetchall()
    finally:
        con.close()
    out = []
    for ns, key, value in rows:
        if not ns.startswith(ns_prefix):
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        out.append((ns, key, value))
    return out


def kv_get(data_dir: Path, ns: str, key: str):
    """The JSON value of one row, or None."""
    for n, k, v in kv_rows(data_dir, ns):
        if n == ns and k == key:
            return json.loads(v)
    return None
