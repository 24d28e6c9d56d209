"""Independent training runs on a Dask cluster: ``forcecast cv --cluster ADDRESS``.

Each cross-validation task (a fold × variant, see :mod:`forcecast.training.cv`) is one Dask task. A
worker trains it with its own TensorFlow into a scratch folder of its own, and returns the fold's
result and its whole folder (``result.json``, ``predictions.npz``, the run) as a tar archive, so the
workers need not share a filesystem with the client; the client unpacks each archive beside the
others under ``OUT/folds/`` and renames it into place (a fold is there whole or not at all), then
reports progress. Dask runs a task again elsewhere when the worker running it dies, and the client
keeps only the first result of a task, so every fold is written once; a fold already on disk is
never sent (cross-validation's own resumability).

The dataset is not shipped: every worker reads it at the client's absolute path, and refuses it
when its fingerprint differs from the client's (see ``docs/cluster.md``).

Only the standard library is imported at module level; ``distributed`` loads when a cluster is used.
"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forcecast.edge.errors import ForcecastRuntimeError, ForcecastValueError

if TYPE_CHECKING:
    from forcecast.training.cv import Task

DEFAULT_CONNECT_TIMEOUT_S = 20.0
"""How long the client tries to reach the scheduler before giving up."""


class ClusterUnreachableError(ForcecastRuntimeError):
    """The Dask scheduler at ``--cluster ADDRESS`` did not answer; the message names the address."""

    reason = "cluster_unreachable"


class ClusterAddressError(ForcecastValueError):
    """``--cluster`` is not a scheduler address (``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT``)."""

    reason = "cluster_address_invalid"


class FoldArchiveError(ForcecastRuntimeError):
    """A worker sent back a fold archive that cannot be unpacked as one (names the fold)."""

    reason = "fold_archive_invalid"


def scheduler_address(text: str) -> str:
    """``--cluster`` as a Dask address: ``HOST:PORT`` becomes ``tcp://HOST:PORT``; ``tcp://`` and ``tls://`` pass.

    Raises
    ------
    ClusterAddressError
        For another protocol, a missing host, or a port that is not a number in 1..65535.
    """
    address = text.strip()
    protocol, sep, rest = address.partition("://")
    if not sep:
        protocol, rest = "tcp", address
    if protocol not in ("tcp", "tls"):
        raise ClusterAddressError(f"--cluster {text!r}: expected tcp://HOST:PORT or tls://HOST:PORT")
    host, colon, port = rest.rpartition(":")
    if not colon or not host.strip("[]") or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ClusterAddressError(f"--cluster {text!r}: expected HOST:PORT with a port in 1..65535, e.g. 10.0.0.1:8786")
    return f"{protocol}://{host}:{port}"


def connect(address: str, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``.

    Raises
    ------
    ClusterUnreachableError
        If the scheduler does not answer within ``timeout_s`` (naming the address), or has no worker yet.
    """
    from distributed import Client

    target = scheduler_address(address)
    try:
        client = Client(target, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnreachableError(
            f"--cluster {target}: no Dask scheduler answered within {timeout_s:g} s ({exc}); start one there with "
            "'dask scheduler' and check the address, the port and the network path (see docs/cluster.md)"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (TimeoutError, OSError):
        client.close()
        raise ClusterUnreachableError(
            f"--cluster {target}: the scheduler has no worker after {timeout_s:g} s; start 'dask worker {target}' "
            "on each node"
        ) from None
    return client


def train_remotely(task: Task) -> tuple[dict[str, Any], bytes]:
    """Run one task on a worker: train it in a scratch folder and return its result and the folder as a tar.

    Runs in the Dask worker process (which keeps TensorFlow and the loaded dataset between tasks).
    """
    from forcecast.training.cv import _clear_keras, run_task

    scratch = Path(tempfile.mkdtemp(prefix=f"forcecast-{task.name}-"))
    try:
        with _keras_seeds_of_its_own(task.config.fit.seed):
            result = run_task(replace(task, folder=str(scratch / task.name)))
        _clear_keras()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(scratch / task.name, arcname=task.name)
        return result, buffer.getvalue()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def _keras_seeds_of_its_own(seed: int) -> Iterator[None]:
    """Give Keras a Python random generator of its own, seeded like the global one, while the block runs.

    Keras draws each layer's initial seed from Python's global ``random`` (after ``set_random_seed``
    seeded it); in a Dask worker the event-loop thread draws from that generator too (retry jitter,
    peer choice), at moments that vary, and the same fold then trained differently on every run. With
    its own generator, seeded the same way, a fold trains as it does in a local process.
    """
    import random

    from keras.src.random import seed_generator

    shared = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared


def unpack_fold(task: Task, archive: bytes) -> None:
    """Write a fold's archive to ``task.folder`` atomically: unpacked beside it, then renamed into place.

    Raises
    ------
    FoldArchiveError
        If the archive is not a tar of exactly this fold's folder (or tries to write outside it).
    """
    folder = Path(task.folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{folder.name}.incoming-", dir=folder.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                tar.extractall(incoming, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise FoldArchiveError(f"fold {task.name}: the worker's archive cannot be unpacked ({exc})") from None
        unpacked = incoming / task.name
        if sorted(p.name for p in incoming.iterdir()) != [task.name] or not unpacked.is_dir():
            raise FoldArchiveError(f"fold {task.name}: the worker's archive does not hold the folder {task.name}/")
        if folder.exists():  # a fold that an interrupted run left without its result: replaced whole
            shutil.rmtree(folder)
        unpacked.rename(folder)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def execute_on_cluster(
    tasks: list[Task],
    address: str,
    on_done: Callable[[Task, dict[str, Any]], None] | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """Train ``tasks`` on the Dask cluster at ``address``; their results by task name, as they were written.

    Parameters
    ----------
    tasks
        Tasks still to run (none of them finished on disk).
    address
        The scheduler (``--cluster``).
    on_done
        Called once per task after its folder is in place (progress).
    connect_timeout_s
        How long to try to reach the scheduler, and to wait for its first worker.

    Raises
    ------
    ClusterUnreachableError
        If the scheduler cannot be reached.
    Exception
        The first task's own error (e.g. :class:`forcecast.training.cv.CVError`), after cancelling the rest.
    """
    if not tasks:
        return {}
    from distributed import as_completed

    client = connect(address, connect_timeout_s)
    results: dict[str, dict[str, Any]] = {}
    try:
        futures = {}
        for task in tasks:
            remote = replace(task, data_dir=str(Path(task.data_dir).resolve()))
            key = f"forcecast-cv-{task.name}-{task.fingerprint[:16]}"
            futures[client.submit(train_remotely, remote, key=key, pure=False)] = task
        with client.as_current():
            finished_first = as_completed(list(futures))
        for future in finished_first:
            task = futures[future]
            if future.status == "error":
                for other in futures:
                    other.cancel()
                print(f"forcecast cv: fold {task.name} failed on the cluster", file=sys.stderr)
                future.result()  # raises the task's own error
            result, archive = future.result()
            # Forget the result on the cluster now it is here: otherwise the scheduler recomputes it on another
            # node when the node that holds it dies, training a fold nobody is waiting for.
            future.release()
            if task.name in results:
                continue
            unpack_fold(task, archive)
            results[task.name] = result
            if on_done:
                on_done(task, result)
    finally:
        client.close()
    return results
