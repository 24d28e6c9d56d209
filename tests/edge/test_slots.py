"""Model slots: resumable upload at explicit offsets, verified commit, atomic switch, trial and rollback."""

from __future__ import annotations

import hashlib
import random
import zlib
from pathlib import Path

import pytest

from forcecast.edge.keys import load_public_key, new_key_pair
from forcecast.edge.slots import ModelSlots, SlotError

DATA = Path(__file__).parents[1] / "data"
PACKAGE = (DATA / "grf_int8.fcpkg").read_bytes()
OTHER = (DATA / "grf_float32.fcpkg").read_bytes()
TRUSTED = [load_public_key(DATA / "forcecast-test.pub")]


def upload(slots: ModelSlots, data: bytes, chunk: int = 4096) -> None:
    state = slots.begin_upload(len(data), hashlib.sha256(data).hexdigest())
    while state.offset < len(data):
        state = slots.write_chunk(state.offset, data[state.offset : state.offset + chunk])
    assert state.crc32 == zlib.crc32(data)


def test_an_upload_cut_at_random_offsets_resumes_and_commits(tmp_path):
    slots = ModelSlots(tmp_path, TRUSTED)
    rng = random.Random(3)
    digest = hashlib.sha256(PACKAGE).hexdigest()
    state = slots.begin_upload(len(PACKAGE), digest)
    for _ in range(12):  # the link drops after a random number of chunks; a new session resumes
        for _ in range(rng.randint(1, 6)):
            if state.offset >= len(PACKAGE):
                break
            state = slots.write_chunk(state.offset, PACKAGE[state.offset : state.offset + rng.randint(100, 3000)])
        slots = ModelSlots(tmp_path, TRUSTED)  # the device process may even have restarted
        state = slots.begin_upload(len(PACKAGE), digest)
    while state.offset < len(PACKAGE):
        state = slots.write_chunk(state.offset, PACKAGE[state.offset : state.offset + 5000])
    assert state.crc32 == zlib.crc32(PACKAGE)
    with pytest.raises(SlotError) as wrong:
        slots.write_chunk(10, b"x")
    assert wrong.value.reason in ("bad_offset", "too_long")
    contract = slots.commit()
    assert contract.rate_hz == 100.0 and slots.active.read_bytes() == PACKAGE and slots.upload() is None


def test_bad_packages_are_refused_and_the_active_model_stays(tmp_path):
    slots = ModelSlots(tmp_path, TRUSTED)
    upload(slots, PACKAGE)
    slots.commit()
    slots.confirm()
    flipped = bytearray(OTHER)
    flipped[len(flipped) // 2] ^= 0x01
    other_key = load_public_key(new_key_pair(tmp_path / "k")[1])
    cases = {
        "flipped byte": (bytes(flipped), ModelSlots(tmp_path, TRUSTED), None),
        "untrusted signer": (OTHER, ModelSlots(tmp_path, [other_key]), None),
        "wrong contract": (OTHER, ModelSlots(tmp_path, TRUSTED), "needs sensor l_thigh"),
    }
    for name, (data, device, refusal) in cases.items():
        upload(device, data)

        def accept(path, contract, manifest, refusal=refusal):
            if refusal:
                raise ValueError(refusal)

        with pytest.raises(SlotError) as refused:
            device.commit(accept)
        assert refused.value.reason != "", name
        assert slots.active.read_bytes() == PACKAGE, name  # the old model still runs
    announced = slots.begin_upload(len(OTHER), hashlib.sha256(b"something else").hexdigest())
    slots.write_chunk(announced.offset, OTHER)
    with pytest.raises(SlotError, match="SHA-256"):
        slots.commit()


def test_a_model_that_never_confirms_is_rolled_back_at_the_next_start(tmp_path):
    slots = ModelSlots(tmp_path, TRUSTED)
    upload(slots, PACKAGE)
    slots.commit()
    assert slots.model_for_start() == (slots.active, False)
    slots.confirm()
    upload(slots, OTHER)
    slots.commit()
    assert slots.model_for_start() == (slots.active, False)  # first start of the new model
    # ...the runtime crashes before confirming; the service restarts it:
    path, rolled_back = slots.model_for_start()
    assert rolled_back and path.read_bytes() == PACKAGE
    assert slots.model_for_start() == (slots.active, False)
    with pytest.raises(SlotError, match="no previous"):
        ModelSlots(tmp_path / "new", TRUSTED).rollback()


def test_the_folder_lock_is_reentrant_for_its_holder_and_exclusive_for_everyone_else(tmp_path):
    import threading

    slots = ModelSlots(tmp_path, TRUSTED)
    other = ModelSlots(tmp_path, TRUSTED)  # another owner of the same folder (as another process would be)
    refused: list[str] = []

    def try_other() -> None:
        try:
            with other.locked(wait=False):
                refused.append("got it")
        except SlotError as exc:
            refused.append(exc.reason)

    with slots.locked(), slots.locked():  # nested: the holder's own operations call each other
        upload(slots, PACKAGE)
        thread = threading.Thread(target=try_other)
        thread.start()
        thread.join()
        assert refused == ["busy"] and other.confirm(wait=False) is False
    try_other()
    assert refused == ["busy", "got it"]


def test_a_commit_killed_before_its_switch_leaves_nothing_that_outlives_the_next_start(tmp_path):
    slots = ModelSlots(tmp_path, TRUSTED)
    upload(slots, PACKAGE)
    slots.commit()
    slots.confirm()
    upload(slots, OTHER)
    (tmp_path / "candidate.fcpkg").write_bytes(OTHER[: len(OTHER) // 2])  # killed while writing its candidate
    assert slots.peek_upload().offset == len(OTHER)
    path, rolled_back = slots.model_for_start()
    assert not rolled_back and path.read_bytes() == PACKAGE and not (tmp_path / "candidate.fcpkg").exists()
    slots.commit()  # the upload itself is still whole and commits
    assert slots.active.read_bytes() == OTHER and slots.peek_upload() is None
