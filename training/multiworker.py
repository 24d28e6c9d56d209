"""Data-parallel training over several machines: the worker cluster, its roles and its meeting point.

``forcecast train DATA --out RUN --workers HOST:PORT,HOST:PORT,... --worker-index I`` runs the same
training on every worker with :class:`tf.distribute.MultiWorkerMirroredStrategy`. This module turns
the ``--workers`` list into the ``TF_CONFIG`` TensorFlow reads (or reads a ``TF_CONFIG`` set by hand),
checks that every other worker answers on its port before TensorFlow is asked to join them (TensorFlow
itself would wait without a word), and says who writes: worker 0 is the chief and writes the run
folder; every other worker writes to a scratch folder of its own that is removed when it finishes.

Only the standard library is imported at module level; Keras loads inside :func:`step_counter`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forcecast.edge.config import ConfigError
from forcecast.edge.errors import ForcecastRuntimeError

DEFAULT_CONNECT_TIMEOUT_S = 120.0
"""How long a worker waits for every other worker to answer on its port before giving up."""
_PROBE_EVERY_S = 0.2


class WorkersError(ConfigError):
    """The worker list or ``TF_CONFIG`` cannot be used; the message names the entry and what is wrong."""

    reason = "workers_invalid"


class WorkerUnreachableError(ForcecastRuntimeError):
    """Another worker did not answer on its ``HOST:PORT`` in time, or this worker cannot open its own port."""

    reason = "worker_unreachable"


@dataclass(frozen=True)
class Endpoint:
    """One worker's address: a host name or IP address and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Role:
    """A process's place in the cluster: its index among ``workers``; index 0 is the chief."""

    workers: tuple[Endpoint, ...]
    index: int

    @property
    def chief(self) -> bool:
        """Whether this worker writes the run folder."""
        return self.index == 0

    @property
    def n_workers(self) -> int:
        """How many workers train together."""
        return len(self.workers)


SINGLE = Role((Endpoint("localhost", 0),), 0)
"""The role of a run on one machine (no cluster)."""


def parse_endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` (``[IPv6]:PORT`` for IPv6 addresses) as an :class:`Endpoint`.

    Raises
    ------
    WorkersError
        If the host is empty or the port is not a number in 1..65535, naming the entry.
    """
    entry = text.strip()
    if entry.startswith("["):
        host, sep, port_text = entry[1:].partition("]:")
    else:
        host, sep, port_text = entry.rpartition(":")
    if not sep or not host:
        raise WorkersError(f"--workers entry {entry!r}: expected HOST:PORT, e.g. 10.0.0.2:23456")
    try:
        port = int(port_text)
    except ValueError:
        raise WorkersError(f"--workers entry {entry!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise WorkersError(f"--workers entry {entry!r}: port {port} is outside 1..65535")
    return Endpoint(host, port)


def parse_workers(text: str) -> tuple[Endpoint, ...]:
    """The ``--workers`` list: comma-separated ``HOST:PORT`` entries, at least two, no duplicates.

    Raises
    ------
    WorkersError
        For a malformed entry, fewer than two workers, or an address named twice.
    """
    workers = tuple(parse_endpoint(part) for part in text.split(",") if part.strip())
    if len(workers) < 2:
        raise WorkersError(f"--workers {text!r}: name at least two workers (HOST:PORT,HOST:PORT,...)")
    seen: set[Endpoint] = set()
    for worker in workers:
        if worker in seen:
            raise WorkersError(f"--workers {text!r}: {worker} is named twice")
        seen.add(worker)
    return workers


def role_of(workers: tuple[Endpoint, ...], index: int) -> Role:
    """The :class:`Role` of worker ``index``, after checking ``index`` against the list.

    Raises
    ------
    WorkersError
        If ``index`` is not one of the workers' positions.
    """
    if not 0 <= index < len(workers):
        raise WorkersError(f"--worker-index {index}: expected 0..{len(workers) - 1} for {len(workers)} workers")
    return Role(workers, index)


def tf_config(role: Role) -> str:
    """The ``TF_CONFIG`` JSON of ``role``: every worker in order, this one as ``worker`` ``index``."""
    return json.dumps(
        {"cluster": {"worker": [str(w) for w in role.workers]}, "task": {"type": "worker", "index": role.index}}
    )


def role_from_tf_config(text: str) -> Role:
    """The :class:`Role` a ``TF_CONFIG`` describes (``chief`` entries first, then ``worker`` entries).

    Raises
    ------
    WorkersError
        If the JSON is malformed, names another task type (``ps``, ``evaluator``), or its index is out of range.
    """
    try:
        data = json.loads(text)
        cluster, task = data["cluster"], data["task"]
        chiefs, others = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = str(task["type"]), int(task["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WorkersError(f"TF_CONFIG: expected {{'cluster': {{'worker': [...]}}, 'task': {{...}}}} ({exc})") from None
    if kind not in ("chief", "worker") or set(cluster) - {"chief", "worker"}:
        raise WorkersError(f"TF_CONFIG: only 'chief' and 'worker' tasks take part in training, got {sorted(cluster)}")
    workers = tuple(parse_endpoint(str(a)) for a in chiefs + others)
    position = index if kind == "chief" else len(chiefs) + index
    if not 0 <= position < len(workers):
        raise WorkersError(f"TF_CONFIG: task {kind} {index} is not in the cluster ({len(workers)} addresses)")
    return Role(workers, position)


def rendezvous(role: Role, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> float:
    """Wait until every other worker answers on its port; the seconds it took.

    While waiting, this worker answers on its own port, so that workers started in any order find
    each other; the port is free again when this returns (TensorFlow's server takes it over).

    Raises
    ------
    WorkerUnreachableError
        If this worker's own port cannot be opened, or some worker did not answer within
        ``timeout_s``, naming each unreachable ``HOST:PORT``, its index and the last error.
    """
    started = time.monotonic()
    own = role.workers[role.index]
    peers = [(i, w) for i, w in enumerate(role.workers) if i != role.index]
    with _answering(own):
        last_error: dict[int, str] = {}
        waiting = dict(peers)
        while waiting:
            for i, worker in list(waiting.items()):
                error = _probe(worker)
                if error is None:
                    del waiting[i]
                else:
                    last_error[i] = error
            if not waiting:
                break
            if time.monotonic() - started > timeout_s:
                names = "; ".join(f"{w} (worker {i}: {last_error[i]})" for i, w in waiting.items())
                raise WorkerUnreachableError(
                    f"worker(s) not reachable after {timeout_s:g} s: {names}. Start 'forcecast train ... --workers "
                    f"{','.join(str(w) for w in role.workers)} --worker-index N' there, and check the address and "
                    "that the port is open between the machines"
                )
            time.sleep(_PROBE_EVERY_S)
    return time.monotonic() - started


def _probe(worker: Endpoint) -> str | None:
    """``None`` when ``worker`` accepts a TCP connection now, else why not."""
    try:
        with socket.create_connection((worker.host, worker.port), timeout=1.0):
            return None
    except socket.gaierror as exc:
        return f"host name does not resolve ({exc.strerror})"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


@contextmanager
def _answering(own: Endpoint) -> Iterator[None]:
    """Accept (and close) connections on this worker's own port while the block runs."""
    try:
        listener = socket.create_server(("", own.port))
    except OSError as exc:
        raise WorkerUnreachableError(
            f"{own}: this worker's own port cannot be opened ({exc.strerror}); another process may be using it"
        ) from None
    listener.settimeout(0.1)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    thread = threading.Thread(target=accept, name="forcecast-rendezvous", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        listener.close()


def join(role: Role, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Any:
    """Meet the other workers and create the ``MultiWorkerMirroredStrategy`` (before any other TensorFlow op).

    Sets ``TF_CONFIG`` for ``role``, waits for every worker (:func:`rendezvous`), then creates the strategy,
    which connects the workers' TensorFlow servers.

    Raises
    ------
    WorkerUnreachableError
        See :func:`rendezvous`.
    """
    os.environ["TF_CONFIG"] = tf_config(role)
    rendezvous(role, timeout_s)
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def role_from_environment() -> Role:
    """The role ``TF_CONFIG`` describes.

    Raises
    ------
    WorkersError
        If ``TF_CONFIG`` is not set (``strategy = "multi_worker"`` then needs ``--workers``) or is malformed.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise WorkersError(
            '[fit] strategy = "multi_worker" needs the workers: give --workers HOST:PORT,... and --worker-index, '
            "or set TF_CONFIG"
        )
    return role_from_tf_config(text)


@contextmanager
def write_folder(out: Path, role: Role) -> Iterator[Path]:
    """Where this worker writes: ``out`` for the chief, a scratch folder (removed afterwards) for the others."""
    if role.chief:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"forcecast-worker{role.index}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def step_counter() -> Any:
    """A Keras callback that counts the training batches this worker ran (``.steps``)."""
    import keras

    class StepCounter(keras.callbacks.Callback):
        """Counts ``on_train_batch_end`` calls."""

        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.steps += 1

    return StepCounter()


def adapt_to_workers(model: Any, strategy: Any, dataset: Any) -> None:
    """Let Keras 3's ``fit`` and ``evaluate`` run ``model`` under ``MultiWorkerMirroredStrategy``.

    Keras 3 (3.15; keras-team/keras#20585, open) fails there twice at the first step, with
    ``Attempt to convert a value (PerReplica:...) ... to a Tensor``:

    1. before ``fit`` it reduces the first distributed batch to build the model, which fails for a
       nested batch; the loss, metric and optimizer state are built here instead, under the strategy,
       from the dataset's shapes with the same Keras routine, and that step is skipped for this model;
    2. it averages each step's logs over the replicas along axis 0, which scalars lack; the train and
       test steps here return each scalar as a one-element vector, so the average is the mean over
       the replicas, the same number on every worker (early stopping and the learning-rate schedule
       therefore decide alike everywhere).

    Only this model object changes; what it saves is the plain functional model.
    """
    import tensorflow as tf

    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = _already_built
    train_step, test_step = model.train_step, model.test_step

    def as_vectors(logs: Any) -> Any:
        return tf.nest.map_structure(lambda v: tf.reshape(v, (1,)) if v.shape.rank == 0 else v, logs)

    model.train_step = lambda data: as_vectors(train_step(data))
    model.test_step = lambda data: as_vectors(test_step(data))


def _already_built(iterator: Any = None, data_batch: Any = None) -> None:
    """Stands in for Keras's build-before-fit step once :func:`adapt_to_workers` has done it."""
