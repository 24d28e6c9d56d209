"""The one error tree: every exception class of ours under ForcecastError, with a stable reason and exit status."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

from forcecast.edge.errors import (
    EXIT_BAD_INPUT,
    EXIT_REFUSED,
    ForcecastError,
    ForcecastRuntimeError,
    ForcecastValueError,
    OutputExistsError,
)

PACKAGES = ("forcecast.edge", "forcecast.lab", "forcecast.training", "forcecast.host_app", "forcecast.clinic")
EXTRA_MODULES = ("forcecast.cli", "forcecast.demo")
REASON = re.compile(r"^[a-z][a-z0-9_]*$")

# Built-in bases callers catch today: re-parenting must keep every one of them.
BUILTIN_BASE = {
    "ConfigError": ValueError,
    "ContractError": ValueError,
    "PackageError": ValueError,
    "KeyFileError": ValueError,
    "ProtocolError": ValueError,
    "AlignmentError": ValueError,
    "CalibrationError": ValueError,
    "DatasetError": ValueError,
    "C3DError": ValueError,
    "TableFormatError": ValueError,
    "MappingError": ValueError,
    "CVError": ValueError,
    "InitError": ValueError,
    "SlotError": RuntimeError,
    "StoreError": RuntimeError,
    "StorageFullError": RuntimeError,
    "SourceError": RuntimeError,
    "I2CTransferError": RuntimeError,
    "RuntimeMissingError": RuntimeError,
    "ModelHealthError": RuntimeError,
    "PairingError": RuntimeError,
    "RadioError": RuntimeError,
    "BrowserError": RuntimeError,
    "HostStoreError": RuntimeError,
    "ConversionError": RuntimeError,
    "DegradationError": RuntimeError,
    "OutputExistsError": FileExistsError,
}
# A refusal or a verdict ends a command with exit status 1 (README "Command line"); everything else with 2.
REFUSALS = {
    "SlotError",
    "FlashRefusedError",
    "ConversionError",
    "DegradationError",
    "StaleProfileError",
    "ClinicRefusedError",
}


def _our_modules() -> list[ModuleType]:
    modules = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if ".migrations" not in info.name:  # Alembic's env.py runs only under Alembic
                modules.append(importlib.import_module(info.name))
    modules.extend(importlib.import_module(name) for name in EXTRA_MODULES)
    return modules


@pytest.fixture(scope="module")
def our_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in one of our modules (warnings are not errors: left out), by name."""
    found: dict[str, type[BaseException]] = {}
    for module in _our_modules():
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and not issubclass(obj, Warning)
                and obj.__module__ == module.__name__
            ):
                assert name not in found or found[name] is obj, f"two exception classes named {name}"
                found[name] = obj
    return found


def test_the_walk_finds_the_exception_classes_it_should(our_exceptions: dict[str, type[BaseException]]) -> None:
    assert set(BUILTIN_BASE) | REFUSALS <= set(our_exceptions)


def test_every_exception_class_of_ours_is_a_forcecast_error_with_a_stable_reason(
    our_exceptions: dict[str, type[BaseException]],
) -> None:
    outside = sorted(name for name, cls in our_exceptions.items() if not issubclass(cls, ForcecastError))
    assert outside == []
    for name, cls in our_exceptions.items():
        reason = cls.reason  # type: ignore[attr-defined]
        assert isinstance(reason, str) and REASON.match(reason), f"{name}.reason = {reason!r}"
        assert cls.exit_code in (EXIT_REFUSED, EXIT_BAD_INPUT), name  # type: ignore[attr-defined]


def test_class_reasons_are_unique(our_exceptions: dict[str, type[BaseException]]) -> None:
    by_reason: dict[str, list[str]] = {}
    for name, cls in our_exceptions.items():
        by_reason.setdefault(cls.reason, []).append(name)  # type: ignore[attr-defined]
    assert {r: names for r, names in by_reason.items() if len(names) > 1} == {}


def test_built_in_bases_are_kept(our_exceptions: dict[str, type[BaseException]]) -> None:
    for name, base in BUILTIN_BASE.items():
        assert issubclass(our_exceptions[name], base), f"{name} is no longer a {base.__name__}"


def test_refusals_exit_1_and_bad_input_exits_2(our_exceptions: dict[str, type[BaseException]]) -> None:
    for name, cls in our_exceptions.items():
        expected = EXIT_REFUSED if name in REFUSALS else EXIT_BAD_INPUT
        assert cls.exit_code == expected, name  # type: ignore[attr-defined]


def test_an_instance_reason_overrides_the_class_default_and_stays_on_the_wire() -> None:
    from forcecast.edge.package import PackageError
    from forcecast.edge.slots import SlotError
    from forcecast.host_app.flash import FlashRefusedError

    assert PackageError.reason == "package_invalid"
    assert PackageError("bad_signature", "x.fcpkg: signature does not verify").reason == "bad_signature"
    assert SlotError("downgrade", "older").reason == "downgrade"
    assert FlashRefusedError("hash_mismatch", "detail").reason == "hash_mismatch"


def test_callers_can_catch_by_meaning() -> None:
    from forcecast.edge.config import ConfigError
    from forcecast.edge.runtime.store import StorageFullError

    with pytest.raises(ValueError, match="bad key"):
        raise ConfigError("bad key")
    with pytest.raises(ForcecastValueError):
        raise ConfigError("bad key")
    with pytest.raises(ForcecastRuntimeError):
        raise StorageFullError("disk full")
    with pytest.raises(FileExistsError):
        raise OutputExistsError("out: not empty")


def test_report_lines_default_to_the_message_and_list_dataset_problems() -> None:
    from forcecast.lab.dataset.problems import DatasetError, Problem

    assert ForcecastValueError("what and where").report_lines() == ["what and where"]
    assert ForcecastError().report_lines() == ["forcecast_error"]
    lines = DatasetError([Problem("subjects.csv", "file not found")]).report_lines()
    assert lines[0] == "the data has 1 problem(s):"
    assert lines[1].startswith("  ") and "subjects.csv" in lines[1]
