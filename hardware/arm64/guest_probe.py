"""Runs inside the emulated arm64 Python: what is installed, and the ``forcecast`` console command.

Standard library only, and nothing of forcecast imported by module name: the CLI is reached through its
``console_scripts`` entry point, exactly as the ``forcecast`` command a ``pip install`` writes would reach
it, so the check keeps working when the package's internal module names change.

``python guest_probe.py probe`` prints one JSON object: machine, Python version, the distributions on
``sys.path`` with their versions, which of the modules the device must not carry are importable, and
whether the ``forcecast`` entry point loads. ``python guest_probe.py cli ARGS...`` runs ``forcecast ARGS...``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

# What a lean device install must not be able to import (DESIGN.md: no pandas, pyarrow, tqdm or
# matplotlib on the device, and never TensorFlow).
NOT_ON_DEVICE = ("pandas", "pyarrow", "tqdm", "matplotlib", "tensorflow")
ENTRY_POINT = "forcecast"


def console_entry_point() -> Callable[[], object]:
    """Load the ``forcecast`` console-script entry point (raises LookupError when it is not installed)."""
    found = importlib.metadata.entry_points(group="console_scripts", name=ENTRY_POINT)
    for entry in found:
        return entry.load()
    raise LookupError(f"no console_scripts entry point named {ENTRY_POINT!r} on sys.path")


def cpuinfo_model(path: str = "/proc/cpuinfo") -> str | None:
    """The ``Model`` line of /proc/cpuinfo as this process sees it (a Pi's, when the fake is mounted), or None."""
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "Model":
                    return value.strip()
    except OSError:
        return None
    return None


def probe() -> dict[str, object]:
    """Describe this interpreter and what it can import.

    Returns
    -------
    dict
        ``machine``, ``python``, ``prefix``, ``cpuinfo_model``, ``distributions`` (name -> version),
        ``importable_not_on_device`` (the modules of NOT_ON_DEVICE that were found), ``entry_point`` (``"ok"`` or
        the error).
    """
    distributions = {
        str(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions() if dist.metadata["Name"]
    }
    present = [name for name in NOT_ON_DEVICE if importlib.util.find_spec(name) is not None]
    try:
        console_entry_point()
        entry = "ok"
    except Exception as exc:  # any import failure of the CLI is the finding itself
        entry = f"{type(exc).__name__}: {exc}"
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "prefix": sys.prefix,
        "cpuinfo_model": cpuinfo_model(),
        "distributions": dict(sorted(distributions.items(), key=lambda kv: kv[0].lower())),
        "importable_not_on_device": present,
        "entry_point": entry,
    }


def main(argv: list[str]) -> int:
    """Run ``probe`` or ``cli ARGS...``; exit status 2 for anything else."""
    if argv[:1] == ["probe"]:
        print(json.dumps(probe()))
        return 0
    if argv[:1] == ["cli"]:
        sys.argv = [ENTRY_POINT, *argv[1:]]
        try:
            run = console_entry_point()
        except Exception:
            traceback.print_exc()
            return 3
        result = run()
        return result if isinstance(result, int) else 0
    print("usage: guest_probe.py probe | cli ARGS...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
