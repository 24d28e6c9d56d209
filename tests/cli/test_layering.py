"""Layering is law: what each layer of forcecast may import, of ours and of third-party packages.

edge (device code) imports nothing of ours above it, never TensorFlow, and none of the packages the device does
not install (pandas, pyarrow, tqdm, matplotlib); the lab layer sits on edge only; training may use edge and lab;
host_app uses edge (and nothing of training); the clinic server uses edge and host_app, and no layer imports it;
nothing of ours is imported by a bare top-level name any more.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"edge", "lab", "training", "host_app", "clinic", "forcecast"}
HEAVY_FOR_DEVICE = {"pandas", "pyarrow", "tqdm", "matplotlib", "ezc3d", "tensorflow", "keras", "tf_keras", "bleak"}
# Folder -> (namespace parts it may import, third-party roots it must not import).
ALLOWED = {
    "edge": ({"edge"}, HEAVY_FOR_DEVICE),
    "lab": ({"edge", "lab"}, {"tensorflow", "keras", "tf_keras", "matplotlib", "bleak"}),
    "training": ({"edge", "lab", "training"}, {"bleak"}),
    "host_app": ({"edge", "host_app"}, {"tensorflow", "keras", "tf_keras"}),
    # The clinic server uses device code (records) and the host's reports; nothing imports it but forcecast/cli.py
    # (no other layer lists "clinic"), and the host's push client speaks to it only over HTTP.
    "clinic": ({"edge", "host_app", "clinic"}, {"tensorflow", "keras", "tf_keras", "bleak"}),
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name that ``path`` imports (``from a.b import c`` gives ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "forcecast":
            names |= {f"forcecast.{alias.name}" for alias in node.names}  # from forcecast import lab
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def violations(package: str) -> list[str]:
    """The imports of ``package``'s files that break its layer's rules, as ``file: module``."""
    allowed, banned = ALLOWED[package]
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            parts = name.split(".")
            if parts[0] in OURS - {"forcecast"}:
                bad = True  # a bare top-level name: ours is imported only as forcecast.<part>
            elif parts[0] == "forcecast":
                bad = len(parts) < 2 or parts[1] not in allowed
            else:
                bad = parts[0] in banned
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    return offenders


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_respects_layering(package):
    assert not violations(package)


def test_the_rules_catch_a_violation(tmp_path, monkeypatch):
    """The checker itself: a device module importing pandas or the lab layer, or a bare ``edge``, is caught."""
    fake = tmp_path / "edge"
    fake.mkdir()
    (fake / "ok.py").write_text("import numpy\nfrom forcecast.edge.schema import PLACES\n")
    (fake / "bad.py").write_text(
        "import pandas as pd\nfrom forcecast.lab.dataset import Dataset\nfrom edge.schema import PLACES\n"
        "from forcecast import training\n"
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations("edge") == [
        "edge/bad.py: edge.schema",
        "edge/bad.py: forcecast.lab.dataset",
        "edge/bad.py: forcecast.training",
        "edge/bad.py: pandas",
    ]


def test_every_layer_folder_is_checked():
    """A new top-level package folder must get a rule (or be the CLI package, which may import everything)."""
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert folders == set(ALLOWED) | {"forcecast"}
