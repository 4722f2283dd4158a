"""Crash safety: scripts/crash-test SIGKILLs a loaded server five times and checks, after every
restart, that every acknowledged write survived intact, that in-flight writes are all-or-nothing,
and that no orphan blob is left (see the script's docstring)."""

import subprocess
import sys

from e2e_helpers import REPO_ROOT, coffer_bin


def test_kill_9_under_load_loses_nothing_acknowledged():
    cmd = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "crash-test"),
        "--kills", "5",
        "--clients", "16",
        "--max-kill", "2.0",
        "--seed", "e2e",
        "--bin", str(coffer_bin()),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"crash-test exited {p.returncode}:\n{out[-6000:]}"
    assert "OK" in p.stdout, out[-3000:]
