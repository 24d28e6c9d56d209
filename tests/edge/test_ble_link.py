"""The GATT server and the host client over bumble's in-process link (no Bluetooth hardware).

The host side is driven through bleak's public API with the bumble backend, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtual_sync import QUICK
from virtual_sync import until as wait_until

from forcecast.edge.link import DeviceLink
from forcecast.edge.protocol import (
    CONTROL_UUID,
    INFO_UUID,
    RECORDS_UUID,
    SERVICE_UUID,
    Opcode,
    RecordKind,
    Status,
    decode_reply,
    encode_live,
    encode_record,
    encode_request,
)
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.bleak_bumble import BumbleClient, BumbleScanner
from forcecast.host_app.client import ClientConfig
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import VirtualLink, virtual_link

logging.getLogger("bumble").setLevel(logging.ERROR)
INSUFFICIENT_ENCRYPTION = 0x0F


def device_store(path: Path, steps: int) -> RecordStore:
    store = RecordStore(path, device_id="fc-test")
    if steps:
        store.append("step", [(float(i), {"i": i, "waveform": [i / 7.0] * 101}) for i in range(1, steps + 1)])
    return store


async def find(link: VirtualLink):
    device = await BleakScanner.find_device_by_filter(
        lambda _d, adv: SERVICE_UUID in adv.service_uuids,
        timeout=2.0,
        backend=BumbleScanner,
        **link.backend_kwargs,
    )
    assert device is not None
    return device


until = partial(wait_until, timeout_s=10.0)


def test_scan_finds_the_device_by_its_service_uuid(tmp_path):
    async def scenario():
        async with virtual_link(DeviceLink(device_store(tmp_path / "d.sqlite", 0), {"device_id": "fc-test"})) as link:
            found = await BleakScanner.discover(
                timeout=0.5, return_adv=True, service_uuids=[SERVICE_UUID], backend=BumbleScanner, **link.backend_kwargs
            )
            other = await BleakScanner.discover(
                timeout=0.3,
                service_uuids=["0000180d-0000-1000-8000-00805f9b34fb"],
                backend=BumbleScanner,
                **link.backend_kwargs,
            )
            return found, other

    found, other = asyncio.run(scenario())
    ((_device, advertisement),) = found.values()
    assert advertisement.local_name == "fcast" and SERVICE_UUID in advertisement.service_uuids
    assert other == []


def test_an_unpaired_central_cannot_write_the_control_point_or_read_the_info(tmp_path):
    async def scenario():
        store = device_store(tmp_path / "d.sqlite", 3)
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"})) as link:
            device = await find(link)
            async with BleakClient(device, backend=BumbleClient, **link.backend_kwargs) as client:
                with pytest.raises(BleakGATTProtocolError) as write:
                    await client.write_gatt_char(CONTROL_UUID, encode_request(Opcode.ACK, 1, RecordKind.STEP, 3), True)
                with pytest.raises(BleakGATTProtocolError) as read:
                    await client.read_gatt_char(INFO_UUID)
                connected = client.is_connected
            return write.value.code, read.value.code, connected, store.stats()["step"]["acked"]

    write_code, read_code, connected, acked = asyncio.run(scenario())
    assert write_code == read_code == INSUFFICIENT_ENCRYPTION
    assert connected and acked == 0  # refused, nothing acknowledged, and the link stayed up


def test_no_new_pairing_once_the_pairing_window_has_closed_but_bonded_hosts_still_connect(tmp_path):
    async def scenario():
        store = device_store(tmp_path / "d.sqlite", 1)
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"}), pairing_window_s=0.0) as link:
            device = await find(link)
            async with BleakClient(device, backend=BumbleClient, **link.backend_kwargs) as client:
                with pytest.raises(BleakError):
                    await client.pair()
                with pytest.raises(BleakGATTProtocolError):
                    await client.write_gatt_char(CONTROL_UUID, encode_request(Opcode.STATUS, 1, RecordKind.STEP), True)
            return link.server.stats()["pairing_refused"]

    assert asyncio.run(scenario()) >= 1


def test_the_host_client_logs_every_record_once_and_acknowledges_it(tmp_path):
    async def scenario():
        store = device_store(tmp_path / "d.sqlite", 300)
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"})) as link:
            host = HostStore(tmp_path / "h.sqlite")
            logger = link.logger(host, QUICK)
            task = asyncio.create_task(logger.run())
            await until(lambda: store.stats()["step"]["acked"] == 300)
            store.append("step", [(301.0, {"i": 301})])  # written while connected: streamed at once
            await until(lambda: host.count("fc-test", "step") == 301)
            logger.stop()
            await task
            return host, logger

    host, logger = asyncio.run(scenario())
    records = host.records("fc-test", "step")
    assert [r.seq for r in records] == list(range(1, 302)) and records[9].payload["i"] == 10
    assert logger.stats.sessions == 1 and logger.stats.duplicates_received == 0 and logger.stats.acks >= 1
    assert logger.clock_offset_ms is not None and abs(logger.clock_offset_ms) < 5_000
    assert host.devices()[0]["info"]["device_id"] == "fc-test"


def test_records_the_device_no_longer_has_are_settled_not_waited_for(tmp_path):
    async def scenario():
        store = device_store(tmp_path / "d.sqlite", 10)
        store.ack("step", 0)
        with store._transaction() as conn:  # the size cap deleted 1..4 before they were sent
            conn.execute("DELETE FROM records WHERE seq <= 4")
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"})) as link:
            host = HostStore(tmp_path / "h.sqlite")
            logger = link.logger(host, QUICK)
            task = asyncio.create_task(logger.run())
            await until(lambda: host.resume_point("fc-test", "step") == 10)
            logger.stop()
            await task
            return logger.stats.device_gaps, store.stats()["step"]["acked"]

    gaps, acked = asyncio.run(scenario())
    assert gaps == 4 and acked == 6


async def paired_client(link: VirtualLink, replies: list[bytes]) -> BleakClient:
    client = BleakClient(await find(link), backend=BumbleClient, **link.backend_kwargs)
    await client.connect()
    await client.pair()
    await client.start_notify(CONTROL_UUID, lambda _c, data: replies.append(bytes(data)))
    return client


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    packets=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [encode_request(Opcode.RESUME, 9, RecordKind.STEP, 0), encode_request(Opcode.LIVE, 3, 1)]
            ).flatmap(lambda valid: st.integers(0, len(valid) - 1).map(lambda n: valid[:n])),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_garbage_written_to_the_control_point_is_answered_counted_and_the_link_stays_up(tmp_path_factory, packets):
    folder = tmp_path_factory.mktemp("fuzz")

    async def scenario():
        store = device_store(folder / "d.sqlite", 2)
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"})) as link:
            replies: list[bytes] = []
            client = await paired_client(link, replies)
            for packet in packets:
                with contextlib.suppress(BleakGATTProtocolError):  # an empty write may be refused by ATT itself
                    await client.write_gatt_char(CONTROL_UUID, packet, True)
            status = encode_request(Opcode.STATUS, 77, RecordKind.STEP)
            await client.write_gatt_char(CONTROL_UUID, status, True)
            await until(lambda: any(r[2:4] == (77).to_bytes(2, "little") for r in replies))
            up = client.is_connected
            await client.disconnect()
            return replies, dict(link.server.link.rejected), up

    replies, rejected, up = asyncio.run(scenario())
    decoded = [decode_reply(r) for r in replies]
    errors = [r for r in decoded if r.status is not Status.OK]
    assert up
    assert decoded[-1].request_id == 77 and decoded[-1].status is Status.OK
    assert sum(rejected.values()) == len(errors)  # every rejection answered and counted
    assert len(replies) <= len(packets) + 1


def test_garbage_notified_to_the_host_is_counted_and_the_records_still_arrive(tmp_path):
    """A misbehaving device: random bytes on every characteristic between valid records."""

    async def scenario():
        store = device_store(tmp_path / "d.sqlite", 0)
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"})) as link:
            host = HostStore(tmp_path / "h.sqlite")
            logger = link.logger(host, ClientConfig(**{**QUICK.__dict__, "live": True}))
            task = asyncio.create_task(logger.run())
            await until(lambda: logger.state == "streaming")
            server, connection = link.server, link.server.connection
            assert connection is not None
            garbage = [b"", b"\x01", b"\x02garbage", bytes(range(40)), b"\x01\x01" + bytes(14)]
            bad_record = encode_record(RecordKind.STEP, 1, {"i": 1}, 247)[0]
            bad_record = bad_record[:-1] + bytes([bad_record[-1] ^ 0xFF])  # CRC mismatch
            live = encode_live("r", 0, 0.0, 0.01, [[1.0, 0.0, 0.0]], 247)[0]
            for characteristic in (server.records, server.live, server.control):
                for packet in garbage:
                    await server.device.notify_subscriber(connection, characteristic, packet)
            await server.device.notify_subscriber(connection, server.records, bad_record)
            await server.device.notify_subscriber(connection, server.live, live[:-2])
            await server.device.notify_subscriber(connection, server.live, live)
            store.append("step", [(1.0, {"i": 1}), (2.0, {"i": 2})])
            server.listener("step", {})
            await until(lambda: host.count("fc-test", "step") == 2)
            stats_then = logger.stats.as_dict()
            logger.stop()
            await task
            return logger.stats, stats_then, server.connections

    stats, during, connections = asyncio.run(scenario())
    assert during["sessions"] == 1 and connections == 1  # the link stayed up through all of it
    assert during["live_blocks"] == 1
    assert sum(v for k, v in stats.rejected.items() if k.startswith("live_")) == 6
    assert sum(v for k, v in stats.rejected.items() if k.startswith("reply_")) == 5
    assert sum(v for k, v in stats.rejected.items() if k.startswith("record_")) >= 5


def test_live_grf_reaches_the_host_when_asked(tmp_path):
    import numpy as np

    async def scenario():
        store = device_store(tmp_path / "d.sqlite", 0)
        async with virtual_link(DeviceLink(store, {"device_id": "fc-test"})) as link:
            host = HostStore(tmp_path / "h.sqlite")
            blocks = []
            logger = link.logger(
                host, ClientConfig(**{**QUICK.__dict__, "live": True}), on_live=lambda b, t: blocks.append(b)
            )
            task = asyncio.create_task(logger.run())
            await until(lambda: logger.state == "streaming")
            await until(lambda: link.server.link.live)
            t = np.arange(50) / 100.0
            grf = np.column_stack([np.sin(t), 0.1 * t, -0.05 * t])
            link.server.listener("grf", {"leg": "r", "time_s": t, "grf_bw": grf})
            await until(lambda: sum(b.grf_bw.shape[0] for b in blocks) == 50)
            logger.stop()
            await task
            return blocks, grf

    blocks, grf = asyncio.run(scenario())
    received = np.vstack([b.grf_bw for b in blocks])
    assert np.abs(received - grf).max() <= 0.0005 + 1e-9 and blocks[0].leg == "r" and blocks[0].period_ms == 10


def test_records_characteristic_is_discovered_with_notify(tmp_path):
    async def scenario():
        async with virtual_link(DeviceLink(device_store(tmp_path / "d.sqlite", 0), {"device_id": "x"})) as link:
            client = BleakClient(await find(link), backend=BumbleClient, **link.backend_kwargs)
            async with client:
                service = client.services.get_service(SERVICE_UUID)
                return {c.uuid: c.properties for c in service.characteristics}, client.mtu_size

    characteristics, mtu = asyncio.run(scenario())
    assert characteristics[RECORDS_UUID] == ["notify"] and "write" in characteristics[CONTROL_UUID]
    assert mtu == 517
