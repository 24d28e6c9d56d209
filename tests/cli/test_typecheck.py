"""The type check of the README's test command (scripts/typecheck.py): which modules it hands mypy, under which names.

- Every source file of the four layers and of ``forcecast/`` is checked once, under its ``forcecast.*`` name (plain
  mypy would name ``edge/records.py`` ``edge.records`` and not resolve ``forcecast.edge.records``); every script
  and test module under its file's name; two files of one name are refused.
- A mapping that names no folder, or a folder without ``__init__.py``, is refused with the package named.
- On a small project, a type error fails the check with its real path and line, and a clean one passes.
"""

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "typecheck.py"
LAYERS = {"forcecast": "forcecast", "edge": "forcecast.edge", "lab": "forcecast.lab", "training": "forcecast.training"}
LAYERS["host_app"] = "forcecast.host_app"
LAYERS["clinic"] = "forcecast.clinic"


def _typecheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("typecheck_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _project(root: Path, body: str, packages: str = '["demo", "demo.inner"]') -> Path:
    (root / "src" / "inner").mkdir(parents=True)
    (root / "src" / "__init__.py").write_text("")
    (root / "src" / "inner" / "__init__.py").write_text("")
    (root / "src" / "inner" / "calc.py").write_text(textwrap.dedent(body))
    (root / "src" / "use.py").write_text("from demo.inner.calc import double\n\nTWICE: int = double(2)\n")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [tool.setuptools]
            package-dir = {{ "demo" = "src" }}
            packages = {packages}

            [tool.mypy]
            python_version = "3.11"
            cache_dir = ".mypy_cache"
            """
        )
    )
    return root / "pyproject.toml"


def test_every_module_of_the_namespace_is_checked_once_under_its_import_name() -> None:
    sources = _typecheck().namespace_sources(ROOT / "pyproject.toml")
    by_path = {Path(s.path).as_posix(): s.module for s in sources}
    assert len(by_path) == len(sources), "a file handed to mypy twice"
    expected = {}
    for folder, package in LAYERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            expected[path.relative_to(ROOT).as_posix()] = ".".join([package, *parts])
    assert by_path == expected
    assert by_path["edge/records.py"] == "forcecast.edge.records"
    assert by_path["lab/dataset/importers/__init__.py"] == "forcecast.lab.dataset.importers"
    loose = {Path(s.path).as_posix(): s.module for s in _typecheck().script_sources(ROOT)}
    files = [p for folder in ("scripts", "examples", "tests") for p in (ROOT / folder).rglob("*.py")]
    assert loose == {p.relative_to(ROOT).as_posix(): p.stem for p in files}
    assert loose["scripts/typecheck.py"] == "typecheck"
    assert loose["tests/cli/test_typecheck.py"] == "test_typecheck"


def test_two_scripts_or_tests_of_one_name_are_refused(tmp_path: Path) -> None:
    for folder in ("tests/edge", "tests/lab"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "test_config.py").write_text("")
    with pytest.raises(ValueError, match=r"tests/edge/test_config\.py and tests/lab/test_config\.py would both be"):
        _typecheck().script_sources(tmp_path)


def test_a_package_is_found_through_its_nearest_mapped_ancestor(tmp_path: Path) -> None:
    typecheck = _typecheck()
    mapping = {"forcecast": "forcecast", "forcecast.edge": "edge"}
    assert typecheck.package_folder("forcecast.edge.runtime", mapping, tmp_path) == tmp_path / "edge" / "runtime"
    assert typecheck.package_folder("forcecast", mapping, tmp_path) == tmp_path / "forcecast"
    assert typecheck.package_folder("other.pkg", {"": "src"}, tmp_path) == tmp_path / "src" / "other" / "pkg"
    with pytest.raises(ValueError, match=r"maps no folder for package 'other\.pkg'"):
        typecheck.package_folder("other.pkg", mapping, tmp_path)


def test_a_mapped_folder_without_init_or_a_table_without_packages_is_refused(tmp_path: Path) -> None:
    typecheck = _typecheck()
    pyproject = _project(tmp_path, "def double(x: int) -> int:\n    return 2 * x\n", '["demo", "demo.missing"]')
    with pytest.raises(ValueError, match=r"package 'demo\.missing' maps to .*missing, which has no __init__\.py"):
        typecheck.namespace_sources(pyproject)
    pyproject.write_text('[tool.setuptools]\npackage-dir = { "demo" = "src" }\n')
    with pytest.raises(ValueError, match=r"pyproject\.toml: \[tool\.setuptools\] needs a 'packages' list"):
        typecheck.namespace_sources(pyproject)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ("def double(x: int) -> int:\n    return 2 * x\n", 0, "Success: no issues found in 4 source files"),
        ("def double(x: int) -> int:\n    return str(x)\n", 1, "src/inner/calc.py:2: error: Incompatible return"),
    ],
    ids=["clean", "type-error"],
)
def test_the_check_resolves_mapped_imports_and_fails_on_a_type_error(
    tmp_path: Path, body: str, status: int, said: str
) -> None:
    _project(tmp_path, body)
    run = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('typecheck_script', {str(SCRIPT)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "from pathlib import Path\n"
        "sys.exit(module.main([], root=Path.cwd()))\n"
    )
    done = subprocess.run([sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == status, done.stdout + done.stderr
    assert said in done.stdout
    assert "Cannot find implementation" not in done.stdout  # demo.inner.calc resolved through the mapping
