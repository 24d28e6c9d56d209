"""``forcecast`` command-line entry point."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that add subcommands. Each has ``register(subparsers)`` and imports only the standard
# library at module level; heavy imports happen inside the command handlers.
COMMAND_MODULES = (
    "forcecast.edge.cli",
    "forcecast.lab.cli",
    "forcecast.training.cli",
    "forcecast.host_app.cli",
    "forcecast.host_app.flash_cli",
    "forcecast.demo",
)
# Third-party packages that come with an extra, not with `forcecast[edge]`: a command that needs one of them on a
# device install says which extra to add, in one line, instead of a traceback.
EXTRA_OF_PACKAGE = {
    "pandas": "lab",
    "pyarrow": "lab",
    "tqdm": "lab",
    "ezc3d": "lab",
    "tensorflow": "train",
    "keras": "train",
    "matplotlib": "host",
    "bleak": "host",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every part's subcommands registered."""
    from forcecast.edge import __version__

    parser = argparse.ArgumentParser(
        prog="forcecast",
        description="3D ground reaction force from wearable IMUs and knee-alignment features.",
        epilog="Run 'forcecast COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"forcecast {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status.

    Known failures (bad data, bad config, missing files) print one clear message and exit 2;
    anything else is a bug and shows its traceback.
    """
    from forcecast.edge.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
        print(f"forcecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Matched by name so that every command does not pay for importing their modules (SciPy, cryptography;
        # the lab's dataset format brings pandas and pyarrow: 150 MB of memory before a package command reads a byte).
        if type(exc).__name__ == "DatasetError":
            problems = getattr(exc, "problems", [])
            print(f"forcecast {args.command}: the data has {len(problems)} problem(s):", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        if type(exc).__name__ not in ("PackageError", "KeyFileError", "ContractError", "CalibrationError"):
            raise
        print(f"forcecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # Device-side failures with a clear message (no sensor, no runtime, unusable store).
        if type(exc).__name__ not in (
            "SourceError",
            "StoreError",
            "RuntimeMissingError",
            "RadioError",
            "HostStoreError",
            "BrowserError",
        ):
            raise
        print(f"forcecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in EXTRA_OF_PACKAGE:
            raise
        extra = EXTRA_OF_PACKAGE[package]
        print(
            f"forcecast {args.command}: needs the '{extra}' extra ({package} is not installed): "
            f"pip install 'forcecast[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
