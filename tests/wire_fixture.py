"""The v1 wire fixture (``tests/data/records/wire_v1.json``) put back together as a host receives it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forcecast.edge.protocol import RecordAssembler, RecordKind

WIRE_V1 = Path(__file__).resolve().parent / "data" / "records" / "wire_v1.json"


def reassembled_wire_v1() -> tuple[list[tuple[dict[str, Any], RecordKind, int, dict[str, Any]]], dict[str, int]]:
    """Every fixture record fed fragment by fragment to one :class:`RecordAssembler`.

    Returns
    -------
    records, rejected
        Per fixture entry: the entry, and the kind, seq and payload the assembler completed with its last
        fragment; then what the assembler rejected (by reason).
    """
    fixture = json.loads(WIRE_V1.read_text())
    assembler = RecordAssembler()
    records = []
    for entry in fixture["records"]:
        for fragment in entry["fragments"]:
            done = assembler.feed(bytes.fromhex(fragment))
        assert done is not None, (
            f"{WIRE_V1}: record {entry['kind']} #{entry['seq']} is not complete after its fragments"
        )
        kind, seq, payload = done
        records.append((entry, kind, seq, payload))
    return records, dict(assembler.rejected)
