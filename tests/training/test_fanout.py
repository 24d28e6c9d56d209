"""``forcecast cv --cluster``: the Dask backend, its addresses and archives, and a node killed mid-way."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_training import tiny_toml, write_config

from forcecast.cli import main
from forcecast.training.fanout import (
    ClusterAddressError,
    ClusterUnreachableError,
    FoldArchiveError,
    connect,
    scheduler_address,
    unpack_fold,
)

TINY_TOML = tiny_toml(min_steps=10)
DASK = Path(sys.executable).with_name("dask")
WORKER_OPTIONS = ("--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


# --- addresses and archives (no cluster) ---


def test_scheduler_addresses():
    assert scheduler_address("10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    assert scheduler_address(" tls://node-a:8786 ") == "tls://node-a:8786"
    for bad, message in [
        ("http://a:1", "tcp://HOST:PORT or tls://"),
        ("a", "HOST:PORT"),
        ("tcp://:8786", "HOST:PORT"),
        ("a:99999", "1..65535"),
        ("a:port", "HOST:PORT"),
    ]:
        with pytest.raises(ClusterAddressError, match=message):
            scheduler_address(bad)


@given(st.text(max_size=30))
def test_any_cluster_text_is_an_address_or_refused(text):
    try:
        address = scheduler_address(text)
    except ClusterAddressError:
        return
    assert address.startswith(("tcp://", "tls://")) and scheduler_address(address) == address


def test_an_unreachable_scheduler_is_named():
    port = free_port()
    with pytest.raises(ClusterUnreachableError, match=rf"--cluster tcp://127\.0\.0\.1:{port}: no Dask scheduler"):
        connect(f"127.0.0.1:{port}", timeout_s=1.0)


class _Task:
    """The two fields of a cv task that :func:`unpack_fold` reads."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.name = folder.name


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_fold_archive_replaces_a_stale_folder_whole(tmp_path):
    folder = tmp_path / "folds" / "S01-imu"
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "half-written.tmp").write_text("left by an interrupted run")
    unpack_fold(_Task(folder), _archive({"S01-imu/result.json": b"{}", "S01-imu/run/model.keras": b"x"}))
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["result.json", "run", "run/model.keras"]
    assert [p.name for p in folder.parent.iterdir()] == ["S01-imu"]  # nothing left beside it


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"S02-imu/result.json": b"{}"}, "does not hold the folder S01-imu/"),
        ({"S01-imu/result.json": b"{}", "extra.txt": b""}, "does not hold the folder"),
        ({"../escape.txt": b"x"}, "cannot be unpacked"),
    ],
)
def test_a_wrong_fold_archive_is_refused_and_leaves_nothing(tmp_path, files, message):
    folder = tmp_path / "folds" / "S01-imu"
    with pytest.raises(FoldArchiveError, match=message):
        unpack_fold(_Task(folder), _archive(files))
    assert list((tmp_path / "folds").iterdir()) == [] and not (tmp_path / "escape.txt").exists()
    with pytest.raises(FoldArchiveError, match="cannot be unpacked"):
        unpack_fold(_Task(folder), b"not a tar")


# --- a two-node cluster on loopback ---


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]], list[Path]]]:
    """A Dask scheduler and two single-threaded workers (separate processes, no nanny) on 127.0.0.1.

    Yields the scheduler address, the two worker processes and each worker's temporary folder.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scratch = [tmp_path / "node0-tmp", tmp_path / "node1-tmp"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    processes = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(logs / "scheduler.log").open("wb"),
        )
    ]
    time.sleep(1.0)
    for i in range(2):
        scratch[i].mkdir()
        processes.append(
            subprocess.Popen(
                [str(DASK), "worker", address, *WORKER_OPTIONS, "--name", f"node{i}"],
                env={**env, "TMPDIR": str(scratch[i])},
                stdout=subprocess.DEVNULL,
                stderr=(logs / f"worker{i}.log").open("wb"),
            )
        )
    try:
        from distributed import Client

        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, processes[1:], scratch
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.mark.tf
def test_cv_on_a_two_node_cluster_survives_a_killed_node(tiny_dataset, tmp_path, cluster):
    address, workers, worker_tmp = cluster
    config = write_config(tmp_path / "tiny.toml", TINY_TOML)
    out = tmp_path / "cv"
    command = [sys.executable, "-c", "import sys; from forcecast.cli import main; sys.exit(main(sys.argv[1:]))"]
    command += ["cv", str(tiny_dataset), "--out", str(out), "--config", str(config), "--seed", "2"]
    command += ["--static", "on", "--cluster", address, "--json"]
    client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    while not list(out.glob("folds/*/result.json")):
        assert client.poll() is None, client.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no fold result within 15 minutes"
        time.sleep(0.5)
    workers[0].send_signal(signal.SIGKILL)  # a node dies mid-way, its running fold with it
    stdout, stderr = client.communicate(timeout=900)
    assert client.returncode == 0, stderr[-3000:]
    assert workers[0].wait(timeout=30) == -signal.SIGKILL and workers[1].poll() is None
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["complete"] is True
    folds = sorted(p.name for p in (out / "folds").iterdir())
    assert folds == ["S01-static", "S02-static", "S03-static"]  # every fold once, nothing half-written beside them
    for name in folds:
        result = json.loads((out / "folds" / name / "result.json").read_text())
        assert result["name"] == name and (out / "folds" / name / "predictions.npz").is_file()
        assert (out / "folds" / name / "run" / "model.keras").is_file()
    written = json.loads((out / "cv.json").read_text())
    assert written["trained_now"] == 3
    assert sorted(f"{r['fold']}-{r['variant']}" for r in written["per_fold"]) == folds  # each fold's result once
    # the surviving node removes its scratch folders (one may still be finishing a task the client no longer needs)
    settled = time.monotonic() + 300
    while list(worker_tmp[1].glob("forcecast-*")) and time.monotonic() < settled:
        time.sleep(0.5)
    assert not list(worker_tmp[1].glob("forcecast-*"))
    # the same result as a local process: one fold again, here
    local = tmp_path / "cv-local"
    base = ["cv", str(tiny_dataset), "--out", str(local), "--config", str(config), "--seed", "2", "--static", "on"]
    assert main([*base, "--limit", "1", "--json"]) == 0
    (name,) = [p.name for p in (local / "folds").iterdir()]
    here, there = (json.loads((root / "folds" / name / "result.json").read_text()) for root in (local, out))
    assert here["fingerprint"] == there["fingerprint"]
    assert json.dumps(here["subject_naive"], sort_keys=True) == json.dumps(there["subject_naive"], sort_keys=True)
    assert len(list(worker_tmp[0].glob("forcecast-*"))) <= 1  # the killed one left at most the fold it was training
