"""``forcecast`` command-line entry point."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from forcecast.edge.errors import EXIT_BROKEN_PIPE

# Modules that add subcommands. Each has ``register(subparsers)`` and imports only the standard
# library at module level; heavy imports happen inside the command handlers.
COMMAND_MODULES = (
    "forcecast.edge.cli",
    "forcecast.lab.cli",
    "forcecast.training.cli",
    "forcecast.host_app.cli",
    "forcecast.host_app.flash_cli",
    "forcecast.clinic.cli",
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
    "sqlalchemy": "clinic",
    "alembic": "clinic",
    "asyncpg": "clinic",
    "aiosqlite": "clinic",
    "argon2": "clinic",
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

    Exit statuses (by the exception's type, see :mod:`forcecast.edge.errors`): 0 done; 1 a refusal or
    verdict (a package refused, a device that said no, a quantised model that lost too much accuracy);
    2 input, configuration or files that cannot be used, and command-line errors; 3 an unexpected error
    (a bug): one line on stderr, its traceback in the log file (and on stderr with ``--verbose``);
    130 interrupted; 141 stdout closed early (e.g. piped into ``head``), quietly.
    """
    try:
        try:
            status = _run(argv)
        except SystemExit:  # argparse after --help, --version or a usage error: its output may meet a closed pipe
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a reader that went away shows here rather than as a traceback at exit
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    return status


def _run(argv: Sequence[str] | None) -> int:
    from forcecast.edge.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ForcecastError

    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    quiet_libraries(verbose)
    command = str(args.command)
    try:
        return int(args.handler(args) or 0)
    except ForcecastError as exc:
        first, *more = exc.report_lines()
        print(f"forcecast {command}: error: {first}", file=sys.stderr)
        for line in more:
            print(line, file=sys.stderr)
        return exc.exit_code
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
        print(f"forcecast {command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in EXTRA_OF_PACKAGE:
            return _unexpected(command, exc, verbose)
        extra = EXTRA_OF_PACKAGE[package]
        print(
            f"forcecast {command}: needs the '{extra}' extra ({package} is not installed): "
            f"pip install 'forcecast[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _unexpected(command, exc, verbose)


def quiet_libraries(verbose: bool) -> None:
    """Silence TensorFlow's and absl's log output unless ``verbose``; call before TensorFlow is imported.

    TensorFlow's native start-up lines are printed before its log level applies; the commands that load
    TensorFlow import it through :func:`forcecast.training.quiet.import_tensorflow`, which drops them too.

    Parameters
    ----------
    verbose
        ``--verbose`` was given: leave every library's logging as it is.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def log_path() -> Path:
    """The file where unexpected errors are logged with their traceback.

    ``$FORCECAST_LOG_DIR/forcecast.log`` when set, else ``$XDG_STATE_HOME/forcecast/forcecast.log``
    (``~/.local/state/forcecast/forcecast.log`` when unset).
    """
    folder = os.environ.get("FORCECAST_LOG_DIR")
    if not folder:
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        folder = str(Path(state) / "forcecast")
    return Path(folder) / "forcecast.log"


def _unexpected(command: str, exc: BaseException, verbose: bool) -> int:
    """Log an unexpected exception with its traceback, say so in one line; return exit status 3."""
    import datetime
    import traceback

    from forcecast.edge.errors import EXIT_UNEXPECTED

    text = "".join(traceback.format_exception(exc))
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            log.write(f"{stamp} forcecast {command}: unexpected {type(exc).__name__}\n{text}\n")
        where = f"traceback in {path}"
    except OSError as log_error:
        where = f"the log {path} cannot be written ({log_error}); run again with --verbose for the traceback"
    if verbose:
        print(text, end="", file=sys.stderr)
    print(
        f"forcecast {command}: unexpected error (a bug, please report it): {type(exc).__name__}: {exc} ({where})",
        file=sys.stderr,
    )
    return EXIT_UNEXPECTED


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail on a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
