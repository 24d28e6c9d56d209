"""``forcecast`` command-line entry point."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that add subcommands. Each has ``register(subparsers)`` and imports only the standard
# library at module level; heavy imports happen inside the command handlers.
COMMAND_MODULES = ("edge.cli", "training.cli", "host_app.cli", "host_app.flash_cli", "forcecast.demo")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every part's subcommands registered."""
    from edge import __version__

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
    from edge.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
        print(f"forcecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Matched by name so that every command does not pay for importing their modules (SciPy, cryptography;
        # edge.dataset brings pandas and pyarrow: 150 MB of memory before a package command reads a byte).
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
