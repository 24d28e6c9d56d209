"""Multi-worker training: the worker list, TF_CONFIG, the meeting point, and two real workers on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_training import tiny_toml, write_config

from forcecast.cli import main
from forcecast.training.multiworker import (
    Endpoint,
    Role,
    WorkersError,
    WorkerUnreachableError,
    parse_endpoint,
    parse_workers,
    rendezvous,
    role_from_tf_config,
    role_of,
    tf_config,
)

TINY_TOML = tiny_toml(min_steps=10).replace("epochs = 2", "epochs = 1")


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (bound to port 0, then released)."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# --- the worker list and TF_CONFIG (no TensorFlow) ---


def test_worker_list_parses_hosts_ports_and_ipv6():
    workers = parse_workers("10.0.0.2:23456, node-b.lab:23457,[::1]:9000")
    assert workers == (Endpoint("10.0.0.2", 23456), Endpoint("node-b.lab", 23457), Endpoint("::1", 9000))
    assert [str(w) for w in workers] == ["10.0.0.2:23456", "node-b.lab:23457", "[::1]:9000"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost:23456", "at least two workers"),
        ("localhost:1,localhost:1", "named twice"),
        ("localhost,other:2", "expected HOST:PORT"),
        (":23456,b:2", "expected HOST:PORT"),
        ("a:x,b:2", "'x' is not a number"),
        ("a:70000,b:2", "outside 1..65535"),
    ],
)
def test_bad_worker_lists_are_refused_by_entry(text, message):
    with pytest.raises(WorkersError, match=message):
        parse_workers(text)


@given(st.text(max_size=40))
def test_any_text_parses_or_is_refused_as_workers_error(text):
    try:
        workers = parse_workers(text)
    except WorkersError:
        return
    assert len(workers) >= 2 and all(1 <= w.port <= 65535 and w.host for w in workers)
    assert parse_workers(",".join(str(w) for w in workers)) == workers  # what is printed parses back


@given(st.text(alphabet="abc.-0123456789", min_size=1, max_size=12), st.integers(1, 65535))
def test_endpoint_round_trips(host, port):
    endpoint = parse_endpoint(f"{host}:{port}")
    assert endpoint == Endpoint(host, port) and parse_endpoint(str(endpoint)) == endpoint


def test_tf_config_round_trips_and_chief_is_worker_zero():
    workers = parse_workers("a:1,b:2,c:3")
    for index in range(3):
        role = role_of(workers, index)
        assert role_from_tf_config(tf_config(role)) == role
        assert role.chief == (index == 0) and role.n_workers == 3
    assert json.loads(tf_config(role_of(workers, 2)))["task"] == {"type": "worker", "index": 2}
    with pytest.raises(WorkersError, match=r"--worker-index 3: expected 0\.\.2"):
        role_of(workers, 3)


def test_hand_made_tf_config_with_a_chief_entry():
    text = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 1}})
    role = role_from_tf_config(text)
    assert role.index == 2 and role.workers[0] == Endpoint("a", 1) and not role.chief
    for bad, message in [
        ("{", "TF_CONFIG: expected"),
        (json.dumps({"cluster": {"worker": ["a:1"]}}), "TF_CONFIG: expected"),
        (json.dumps({"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "ps", "index": 0}}), "only"),
        (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 5}}), "not in"),
    ]:
        with pytest.raises(WorkersError, match=message):
            role_from_tf_config(bad)


def test_batch_plan_keeps_one_machine_exact_and_shares_the_work_between_replicas():
    from dataclasses import replace

    from forcecast.training.config import TrainConfig
    from forcecast.training.fit import BatchPlan
    from forcecast.training.windows import steps_per_epoch

    config = TrainConfig()
    config = replace(config, fit=replace(config.fit, batch_size=64, learning_rate=1e-3, epochs=10, min_steps=600))
    one = BatchPlan.of(config, 1, 100_000)
    assert (one.global_batch, one.learning_rate) == (64, 1e-3)
    assert one.steps_per_epoch == steps_per_epoch(100_000, 64, config.data.train_stride, 10, 600)
    two = BatchPlan.of(config, 2, 100_000)
    assert (two.per_replica_batch, two.global_batch) == (64, 128)
    assert two.learning_rate == pytest.approx(1e-3 * 2**0.5)
    assert two.steps_per_epoch * two.global_batch >= one.steps_per_epoch * one.global_batch - two.global_batch
    assert two.steps_per_epoch < one.steps_per_epoch  # the same windows in fewer, larger steps
    small = BatchPlan.of(config, 4, 10)  # a tiny dataset: the min_steps floor is shared too
    assert small.steps_per_epoch == 15 and small.steps_per_epoch * 4 * 10 == 600


# --- the meeting point ---


def test_an_unreachable_worker_is_named_with_its_address():
    own, absent = free_ports(2)
    role = Role((Endpoint("127.0.0.1", own), Endpoint("127.0.0.1", absent)), 0)
    with pytest.raises(WorkerUnreachableError, match=rf"after 0.5 s: 127\.0\.0\.1:{absent} \(worker 1: "):
        rendezvous(role, timeout_s=0.5)


def test_a_worker_whose_own_port_is_taken_says_so():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        (other,) = free_ports(1)
        role = Role((Endpoint("127.0.0.1", port), Endpoint("127.0.0.1", other)), 0)
        with pytest.raises(WorkerUnreachableError, match=rf"127\.0\.0\.1:{port}: this worker's own port"):
            rendezvous(role, timeout_s=0.5)


def test_two_meeting_points_find_each_other_in_any_order():
    import threading
    import time

    ports = free_ports(2)
    workers = tuple(Endpoint("127.0.0.1", p) for p in ports)
    took: dict[int, float] = {}
    both_met = threading.Event()

    def meet(index: int) -> None:
        took[index] = rendezvous(Role(workers, index), timeout_s=120)  # patient: a loaded 2-core machine
        # As TensorFlow's server does in a real run, something keeps answering on the port once this worker is
        # through, so a peer that has not yet seen it still finds it.
        with socket.create_server(("127.0.0.1", workers[index].port)) as server:
            server.settimeout(0.05)
            deadline = time.monotonic() + 120
            while not both_met.is_set() and time.monotonic() < deadline:
                try:
                    server.accept()[0].close()
                except TimeoutError:
                    if len(took) == 2:
                        both_met.set()

    second = threading.Thread(target=meet, args=(1,))
    first = threading.Thread(target=meet, args=(0,))
    first.start()
    time.sleep(0.5)  # worker 1 starts later: worker 0 keeps asking until it answers
    second.start()
    first.join()
    second.join()
    assert set(took) == {0, 1} and took[0] >= 0.4


def test_cli_refuses_half_a_worker_setup(tiny_dataset, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.toml", TINY_TOML)
    base = ["train", str(tiny_dataset), "--config", str(config)]
    assert main([*base, "--out", str(tmp_path / "a"), "--workers", "127.0.0.1:1,127.0.0.1:2"]) == 2
    assert "--workers needs --worker-index" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--worker-index", "0"]) == 2
    assert "--worker-index needs --workers" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c"), "--workers", "127.0.0.1:1", "--worker-index", "0"]) == 2
    assert "at least two workers" in capsys.readouterr().err


def test_multi_worker_without_workers_or_tf_config_is_refused(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = write_config(tmp_path / "mw.toml", TINY_TOML.replace("[fit]", '[fit]\nstrategy = "multi_worker"'))
    assert main(["train", str(tiny_dataset), "--out", str(tmp_path / "run"), "--config", str(config)]) == 2
    assert "needs the workers: give --workers" in capsys.readouterr().err


# --- two real workers (separate processes on loopback) ---


def _worker(index: int, ports: list[int], data: Path, out: Path, config: Path, scratch: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    workers = ",".join(f"127.0.0.1:{p}" for p in ports)
    command = [sys.executable, "-c", "import sys; from forcecast.cli import main; sys.exit(main(sys.argv[1:]))"]
    command += ["train", str(data), "--out", str(out), "--config", str(config), "--json"]
    command += ["--workers", workers, "--worker-index", str(index), "--worker-timeout", "120"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.tf
def test_two_workers_train_one_model_together_and_only_the_chief_writes(tiny_dataset, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.toml", TINY_TOML)
    out = tmp_path / "run"  # both are given the same folder, as on two machines with the same paths
    scratch = [tmp_path / "tmp0", tmp_path / "tmp1"]
    for folder in scratch:
        folder.mkdir()
    ports = free_ports(2)
    workers = [_worker(i, ports, tiny_dataset, out, config, scratch[i]) for i in (1, 0)]  # the chief starts last
    reports = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    other, chief = (r["distribution"] for r in reports)
    assert chief["chief"] and not other["chief"]
    assert (chief["worker_index"], other["worker_index"]) == (0, 1)
    assert chief["workers"] == other["workers"] == 2 and chief["global_batch"] == 2 * chief["per_replica_batch"]
    # both took part in every synchronous step
    assert chief["steps_this_worker"] == other["steps_this_worker"] == reports[1]["gradient_steps"] > 0
    # the same global validation loss on both (early stopping decides alike)
    assert reports[0]["best_val_loss"] == pytest.approx(reports[1]["best_val_loss"], rel=1e-6)
    # only the chief wrote the run; the other worker's scratch folder is gone
    assert json.loads((out / "metrics.json").read_text())["distribution"]["workers"] == 2
    assert (out / "model.keras").is_file() and (out / "history.csv").is_file()
    assert list(scratch[1].iterdir()) == []
    assert "subject_naive" in reports[1] and "subject_naive" not in reports[0]
    # the model evaluates
    capsys.readouterr()
    assert main(["evaluate", str(tiny_dataset), "--model", str(out / "model.keras"), "--json"]) == 0
    axes = json.loads(capsys.readouterr().out)["axes"]
    assert all(-1.0 <= axes[a]["r"] <= 1.0 for a in ("v", "ap", "ml"))
