"""Options shared by every ``forcecast`` subcommand: one definition of each, used by every registration.

- :func:`add_common`: ``--verbose`` on every command, ``--json`` and ``--force`` where the command has them.
- :func:`add_dataset`: the dataset folder as the first positional ``DATA`` (as ``forcecast data check DIR``),
  with the old ``--data DIR`` still accepted, marked deprecated in the help and warned about when used;
  :func:`dataset_of` resolves the two.
- :func:`refuse_non_empty` / :func:`refuse_existing_file`: an output that already holds something is
  replaced only with ``--force``.

Only the standard library is imported here (the device's commands use it too).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forcecast.edge.errors import OutputExistsError, UsageError

JSON_HELP = "print one JSON object on stdout instead of text"


class DeprecatedOption(argparse.Action):
    """Store an option's value like ``store`` and print one deprecation warning on stderr naming the new spelling."""

    def __init__(self, option_strings: Sequence[str], dest: str, advice: str = "", **kwargs: Any) -> None:
        self.advice = advice
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Store ``values`` and warn on stderr."""
        print(f"{parser.prog}: warning: {option_string} is deprecated; {self.advice}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_common(parser: argparse.ArgumentParser, *, json: str | None = None, force: str | None = None) -> None:
    """Add ``--verbose`` and, when a help text is given, ``--json`` and ``--force``.

    Parameters
    ----------
    parser
        A leaf command's parser (e.g. the one of ``forcecast data synth``).
    json
        Help of ``--json`` (what the one JSON object holds); ``None``: the command has no ``--json``.
    force
        Help of ``--force`` (what it replaces); ``None``: the command has no ``--force``.
    """
    if json is not None:
        parser.add_argument("--json", action="store_true", help=json or JSON_HELP)
    if force is not None:
        parser.add_argument("--force", action="store_true", help=force)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show library log output (e.g. TensorFlow's) and the traceback of an unexpected error",
    )


def add_dataset(parser: argparse.ArgumentParser, help: str = "dataset folder (format v1)") -> None:
    """Add the dataset folder as the positional ``DATA`` and the deprecated ``--data DIR`` spelling of it.

    Parameters
    ----------
    parser
        The command's parser; read the folder back with :func:`dataset_of`.
    help
        Help of ``DATA``.
    """
    parser.add_argument("dataset", nargs="?", type=Path, metavar="DATA", help=help)
    parser.add_argument(
        "--data",
        dest="dataset_option",
        type=Path,
        metavar="DIR",
        action=DeprecatedOption,
        advice="give the dataset folder first, as DATA",
        help="deprecated spelling of DATA (still works, with a warning)",
    )


def dataset_of(args: argparse.Namespace) -> Path:
    """The dataset folder given as ``DATA`` or through the deprecated ``--data``.

    Raises
    ------
    UsageError
        If neither or both spellings were given.
    FileNotFoundError
        If the folder does not exist (said before any heavy import).
    """
    positional: Path | None = getattr(args, "dataset", None)
    option: Path | None = getattr(args, "dataset_option", None)
    if positional is not None and option is not None:
        raise UsageError(f"the dataset folder is given twice (DATA {positional} and --data {option}); give it once")
    folder = positional if positional is not None else option
    if folder is None:
        raise UsageError("the dataset folder DATA is required (e.g. forcecast train DATA --out RUN)")
    if not folder.is_dir():
        raise FileNotFoundError(f"DATA {folder}: no such dataset folder")
    return folder


def refuse_non_empty(folder: Path, force: bool, option: str = "--out") -> None:
    """Refuse to write into a folder that already holds something, unless ``force``.

    Parameters
    ----------
    folder
        The output folder (it need not exist).
    force
        ``--force`` was given: write into it anyway (files of the same names are replaced).
    option
        The option that named the folder, for the message.

    Raises
    ------
    OutputExistsError
        If ``folder`` is a file, or a folder with entries, and not ``force``.
    """
    if force or not folder.exists():
        return
    if not folder.is_dir():
        raise OutputExistsError(f"{option} {folder}: is a file, not a folder; choose a folder or pass --force")
    if any(folder.iterdir()):
        raise OutputExistsError(
            f"{option} {folder}: the folder is not empty; choose a new folder or pass --force to write into it"
        )


def refuse_existing_file(path: Path, force: bool, option: str = "--out") -> None:
    """Refuse to replace an existing output file, unless ``force``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and not ``force``.
    """
    if not force and path.exists():
        raise OutputExistsError(f"{option} {path}: the file exists; choose another name or pass --force to replace it")
