"""The ``forcecast`` command: one entry point that dispatches to training, edge and host_app.

This package holds only the command-line front door. Each part registers its own subcommands
from a light module that imports nothing heavy at import time, so ``forcecast --help`` and
``forcecast edge ...`` work on a device that has only the ``edge`` extra installed.
"""

import sys
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_file_location
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the public API, for type checkers; at run time ``__getattr__`` imports it on first use
    from forcecast.api import GRFPredictor as GRFPredictor
    from forcecast.api import Model as Model
    from forcecast.api import check_dataset as check_dataset
    from forcecast.api import cross_validate as cross_validate
    from forcecast.api import evaluate as evaluate
    from forcecast.api import import_lab_data as import_lab_data
    from forcecast.api import load_model as load_model
    from forcecast.api import open_dataset as open_dataset
    from forcecast.api import train as train

_CHECKOUT = Path(__file__).resolve().parent.parent
LAYERS = ("edge", "lab", "training", "host_app")
"""The top-level folders of a checkout that ``pyproject.toml`` maps to ``forcecast.<folder>``."""


class _CheckoutLayers:
    """``forcecast.<layer>`` from a source checkout that was never installed (``PYTHONPATH=.``).

    An installed forcecast (wheel or editable) resolves these names first; this finder, appended last to
    ``sys.meta_path``, only answers in a checkout, exactly for the mapped names, so each module has one name.
    """

    @classmethod
    def find_spec(cls, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        """The spec of ``forcecast.<layer>`` from ``<checkout>/<layer>/``, else ``None``."""
        parent, _, layer = name.partition(".")
        if parent != "forcecast" or layer not in LAYERS:
            return None
        return spec_from_file_location(
            name, _CHECKOUT / layer / "__init__.py", submodule_search_locations=[str(_CHECKOUT / layer)]
        )


_IN_CHECKOUT = (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "edge" / "__init__.py").is_file()
if _IN_CHECKOUT and _CheckoutLayers not in sys.meta_path:
    sys.meta_path.append(_CheckoutLayers)

_API = (
    "GRFPredictor",
    "Model",
    "check_dataset",
    "cross_validate",
    "evaluate",
    "import_lab_data",
    "load_model",
    "open_dataset",
    "train",
)
"""The public Python API (:mod:`forcecast.api`), imported on first use so ``import forcecast`` stays light."""


def __getattr__(name: str) -> object:
    """``forcecast.<name>`` of the public API, from :mod:`forcecast.api` on first access."""
    if name in _API:
        from forcecast import api

        return getattr(api, name)
    raise AttributeError(f"module 'forcecast' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API and the layer names (not this module's helpers)."""
    return sorted({*_API, "LAYERS", *(n for n in globals() if n.startswith("__"))})
