"""Sources that a layer above the device code provides, found through the ``forcecast.sources`` entry points.

The synthetic walker (``--source synthetic``) is the lab layer's gait model (:mod:`forcecast.lab.sources.synthetic`);
device code must not import the lab layer, so it finds that source by name, as an installed entry point
declared in ``pyproject.toml``. A device installed with only the ``edge`` extra still has the code; what it may
lack is the lab's dependencies, and loading then fails with one line that names the extra to install.
"""

from __future__ import annotations

from importlib.metadata import distributions
from typing import Any

from forcecast.edge.sources.base import SourceError

GROUP = "forcecast.sources"
"""Entry-point group of plug-in sources: ``name = "module:SourceClass"``."""


def source_class(kind: str) -> Any:
    """The source class registered as ``kind`` in the ``forcecast.sources`` entry points.

    Parameters
    ----------
    kind
        The source's name, e.g. ``"synthetic"``.

    Returns
    -------
    type
        The class; call it with the source's keyword arguments.

    Raises
    ------
    SourceError
        No such entry point (forcecast not installed as a package), or its module cannot be imported;
        the message says which and how to fix it.
    """
    # Every distribution's entry points, not only the first "forcecast" on sys.path: a stale forcecast.egg-info
    # left in a checkout (the working directory comes first on sys.path) must not hide the installed one.
    found = [p for dist in distributions() for p in dist.entry_points if p.group == GROUP and p.name == kind]
    if not found:
        raise SourceError(
            f"source {kind!r}: no entry point {kind!r} in group {GROUP!r}; install forcecast as a package "
            "(pip install -e '.[all]' in a checkout)"
        )
    point = found[0]
    try:
        return point.load()
    except ModuleNotFoundError as exc:
        raise SourceError(
            f"source {kind!r} ({point.value}) needs {exc.name}, which is not installed: pip install 'forcecast[lab]'"
        ) from None
