"""Type-check every module of the ``forcecast`` namespace with mypy, under the names they are imported by.

The source folders are mapped into one namespace by setuptools (``[tool.setuptools] package-dir`` in
``pyproject.toml``: ``edge/`` is ``forcecast.edge``, ``lab/`` is ``forcecast.lab``, ...). mypy finds modules
only by folder, so run on the folders it would name ``edge/records.py`` ``edge.records`` and could not resolve
``import forcecast.edge.records``; an editable install's import hook is invisible to it too. This script reads
the same mapping and hands mypy every file under its ``forcecast.*`` name, so imports resolve to the files of
this checkout and errors are reported at their real paths. The scripts, the examples and the tests are checked
too, each module under its file's name, as ``python scripts/NAME.py`` and pytest (rootdir-relative imports of
the helpers in ``tests/``) import them. Options come from ``[tool.mypy]`` (strict on ``forcecast.edge``, the device
code; standard elsewhere)::

    python scripts/typecheck.py              # the README's test command runs exactly this
    python scripts/typecheck.py --no-incremental   # any further mypy option passes through

Exit status as mypy's: 0 clean, 1 type errors, 2 a blocking error (syntax, bad configuration).
"""

from __future__ import annotations

import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from mypy import util
from mypy.fscache import FileSystemCache
from mypy.main import process_options, run_build
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent
SCRIPT_FOLDERS = ("scripts", "examples", "tests")
"""Folders, searched with their subfolders, of modules imported by their file's name (scripts, examples, tests)."""


def package_folder(package: str, package_dir: Mapping[str, str], root: Path) -> Path:
    """The folder that holds ``package``, through the nearest mapped ancestor (as setuptools resolves it).

    Parameters
    ----------
    package
        Dotted package name, e.g. ``forcecast.edge.runtime``.
    package_dir
        ``[tool.setuptools] package-dir`` of ``pyproject.toml``: package name to folder, relative to ``root``.
    root
        The repository root.

    Returns
    -------
    Path
        The package's folder, e.g. ``root / "edge" / "runtime"``.

    Raises
    ------
    ValueError
        If neither the package nor any ancestor is mapped and there is no root mapping (``""``).
    """
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        ancestor = ".".join(parts[:cut])
        if ancestor in package_dir:
            return root / package_dir[ancestor] / Path(*parts[cut:])
    if "" in package_dir:
        return root / package_dir[""] / Path(*parts)
    raise ValueError(f"pyproject.toml: [tool.setuptools] package-dir maps no folder for package {package!r}")


def namespace_sources(pyproject: Path) -> list[BuildSource]:
    """Every module of the packages ``pyproject.toml`` lists, named as it is imported.

    Parameters
    ----------
    pyproject
        Path of ``pyproject.toml``; its ``[tool.setuptools]`` table must have ``packages`` and ``package-dir``.

    Returns
    -------
    list of mypy.modulefinder.BuildSource
        One per ``.py`` file directly in each listed package's folder, in a stable order.

    Raises
    ------
    ValueError
        If ``[tool.setuptools]`` lacks ``packages`` or ``package-dir``, a package's folder does not exist, or
        holds no ``__init__.py``.
    """
    with pyproject.open("rb") as handle:
        setuptools_table = tomllib.load(handle).get("tool", {}).get("setuptools", {})
    packages = setuptools_table.get("packages")
    package_dir = setuptools_table.get("package-dir")
    if not isinstance(packages, list) or not isinstance(package_dir, dict):
        raise ValueError(f"{pyproject}: [tool.setuptools] needs a 'packages' list and a 'package-dir' table")
    root = pyproject.parent
    sources: list[BuildSource] = []
    for package in packages:
        folder = package_folder(str(package), package_dir, root)
        if not (folder / "__init__.py").is_file():
            raise ValueError(f"{pyproject}: package {package!r} maps to {folder}, which has no __init__.py")
        for path in sorted(folder.glob("*.py")):
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            sources.append(BuildSource(str(path.relative_to(root)), module))
    return sources


def script_sources(root: Path, folders: Sequence[str] = SCRIPT_FOLDERS) -> list[BuildSource]:
    """Every ``.py`` file under ``folders`` (relative to ``root``), each named by its file, as it is imported.

    Parameters
    ----------
    root
        The repository root.
    folders
        Script and test folders, searched with their subfolders; one that does not exist adds nothing.

    Returns
    -------
    list of mypy.modulefinder.BuildSource
        One per file, in a stable order.

    Raises
    ------
    ValueError
        If two files share a name (one module name for both): the two paths are named.
    """
    sources: dict[str, BuildSource] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            relative = str(path.relative_to(root))
            if path.stem in sources:
                raise ValueError(f"{sources[path.stem].path} and {relative} would both be module {path.stem!r}")
            sources[path.stem] = BuildSource(relative, path.stem)
    return list(sources.values())


def main(argv: Sequence[str], root: Path = ROOT) -> int:
    """Run mypy over the namespace's modules with the options of ``pyproject.toml`` plus ``argv``.

    Parameters
    ----------
    argv
        Extra mypy command-line options (no targets: the targets are the namespace's modules).
    root
        The project: its ``pyproject.toml`` and source folders (file paths are taken relative to it, so run
        from there).

    Returns
    -------
    int
        mypy's exit status: 0 clean, 1 errors, 2 blocking errors.
    """
    pyproject = root / "pyproject.toml"
    sources = namespace_sources(pyproject) + script_sources(root)
    fscache = FileSystemCache()
    # process_options needs targets to accept the command line; the real targets replace them below.
    _, options = process_options(
        ["--config-file", str(pyproject), *argv, *(str(source.path) for source in sources)],
        stdout=sys.stdout,
        stderr=sys.stderr,
        fscache=fscache,
    )
    started = time.time()
    _, messages, blockers = run_build(sources, options, fscache, started, sys.stdout, sys.stderr)
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    n_errors, _, n_files = util.count_stats(messages)
    if n_errors or blockers:
        print(formatter.format_error(n_errors, n_files, len(sources), blockers=blockers), flush=True)
        return 2 if blockers else 1
    print(formatter.format_success(len(sources), use_color=False), flush=True)
    return 0


if __name__ == "__main__":
    import os

    os.chdir(ROOT)  # paths in messages and the cache folder are relative to the repository root
    sys.exit(main(sys.argv[1:]))
