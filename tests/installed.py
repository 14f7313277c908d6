"""Helpers for the tests of installed copies (wheel, bundle, .deb): a clean environment and a
way to run with the network unreachable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def clean_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of an installed copy: no PYTHONPATH, no project venv on PATH, offscreen Qt;
    with ``home``, settings and caches under it (a first run)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    prefix = str(Path(sys.prefix).resolve())
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not str(Path(p).resolve()).startswith(prefix))
    env["QT_QPA_PLATFORM"] = "offscreen"
    if home is not None:
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
                   XDG_DATA_HOME=str(home / "data"))
    env.update(extra)
    return env


def offline_prefix(mount: bool = False) -> tuple[list[str] | None, str]:
    """The command prefix that runs a program with no network (a new network namespace with only
    a loopback that is down; with ``mount``, a private mount namespace too), and why not if none."""
    if shutil.which("unshare") is None:
        return None, "no unshare(1) on this machine"
    tries = [["unshare", "-rmn"], ["unshare", "-mn"]] if mount else [["unshare", "-rn"], ["unshare", "-n"]]
    errors = []
    for cmd in tries:
        r = subprocess.run(cmd + ["true"], capture_output=True, text=True)
        if r.returncode == 0:
            return cmd, ""
        errors.append(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return None, "cannot make a network namespace here (" + "; ".join(errors) + ")"


def interfaces(prefix: list[str]) -> list[str]:
    """The network interfaces a program run under ``prefix`` sees."""
    out = subprocess.run(prefix + ["cat", "/proc/net/dev"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0].strip() for line in out.splitlines()[2:] if ":" in line]
