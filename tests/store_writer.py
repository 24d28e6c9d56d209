"""Crash-test child: append step records to a store as fast as possible until killed.

Usage: ``python tests/store_writer.py STORE SEED``. Prints ``ready`` once the store is open, then
after every append returns one line ``s SEQ SEQ ...`` with the committed step seqs, and after every
acknowledgement ``a SEQ``. Payloads are a pure function of the seq so that the parent can check them.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from forcecast.edge.runtime.store import RecordStore


def payload_for(seq: int) -> dict[str, Any]:
    """The step payload the writer stores under ``seq``."""
    return {
        "seq": seq,
        "leg": "r" if seq % 2 else "l",
        "peak_bw": 1.0 + seq / 7.0,
        "grf_bw": [seq * 0.1, -seq / 3.0, 1e-7 * seq],
        "note": "pas à pas",
        "pad": "x" * (seq % 97),
    }


def time_for(seq: int) -> float:
    """The device time the writer stores under ``seq``."""
    return seq * 0.01


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    store = RecordStore(path, device_id="crash-test")
    print("ready", flush=True)
    while True:
        first = store.last_seq("step") + 1
        seqs = list(range(first, first + rng.randint(1, 8)))
        assigned = store.append("step", [(time_for(s), payload_for(s)) for s in seqs])
        if assigned != seqs:
            raise SystemExit(f"expected seqs {seqs}, got {assigned}")
        print("s", *assigned, flush=True)
        if rng.random() < 0.1:
            store.append("summary", [(time_for(first), {"steps": len(seqs)})])
        if rng.random() < 0.1:
            upto = rng.randint(0, assigned[-1])
            store.ack("step", upto)
            print("a", upto, flush=True)


if __name__ == "__main__":
    main()
