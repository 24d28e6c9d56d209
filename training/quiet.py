"""Import TensorFlow without its start-up noise on stderr (unless the user asked to see it).

TensorFlow 2.x prints native log lines while it loads (oneDNN, CPU instructions, CUDA probing) before
``TF_CPP_MIN_LOG_LEVEL`` or absl's settings apply, straight to file descriptor 2. The command line imports it
here first, with descriptor 2 pointed at a temporary file: the lines are dropped when the import works and
replayed on stderr when it fails (they may say why).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def _stderr_captured() -> Iterator[IO[bytes]]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow (and Keras), quietly unless ``verbose``.

    Parameters
    ----------
    verbose
        Leave TensorFlow's output alone (``--verbose``).

    Raises
    ------
    ImportError
        If TensorFlow cannot be imported; what it printed on the way is shown on stderr first.
    """
    if verbose or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    failure: BaseException | None = None
    replay = b""
    with _stderr_captured() as capture:
        try:
            import tensorflow  # noqa: F401
        except BaseException as exc:
            failure = exc
            capture.seek(0)
            replay = capture.read()
    if failure is not None:
        sys.stderr.write(replay.decode(errors="replace"))
        raise failure
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
