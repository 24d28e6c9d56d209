"""The device side of a model upload over a link: chunks in, durable acknowledgements out.

Chunks arrive as writes without response, each naming its offset. They are collected in memory and
written to the upload slot (:class:`forcecast.edge.slots.ModelSlots`, with ``fsync``) every ``ack_bytes`` and at
the end; only then does the host get an acknowledgement, so an acknowledged offset survives a
disconnect, a crash or a power cut, and a resumed upload continues from it. A chunk at any other
offset than the next expected one (lost writes, a host resending after a timeout) is not written:
the buffer is made durable and the host is told once, with ``rewind`` set, where to continue.
"""

from __future__ import annotations

import threading

from forcecast.edge.protocol import encode_upload_ack
from forcecast.edge.slots import ModelSlots, SlotError, Upload

ACK_BYTES = 4096
"""Acknowledge (and fsync) every this many bytes: the most a disconnect costs a resumed upload."""


class UploadReceiver:
    """Receive one package into ``slots``; thread-safe.

    Parameters
    ----------
    slots
        The device's model slots.
    ack_bytes
        Bytes between durable acknowledgements.
    """

    def __init__(self, slots: ModelSlots, ack_bytes: int = ACK_BYTES) -> None:
        if ack_bytes < 1:
            raise ValueError(f"ack_bytes must be ≥ 1, got {ack_bytes}")
        self.slots = slots
        self.ack_bytes = ack_bytes
        self._buffer = bytearray()
        self._rewound = False
        self._lock = threading.Lock()
        self.rejected: dict[str, int] = {}
        self.chunks = 0

    def begin(self, size: int, sha256: str) -> tuple[int, int]:
        """Start or resume the upload of the package with this size and hash: ``(offset, crc32)`` to go on from.

        Raises
        ------
        SlotError
            ``bad_size`` or ``bad_hash``.
        """
        with self._lock:
            self._buffer.clear()
            self._rewound = False
            state = self.slots.begin_upload(size, sha256)
            return state.offset, state.crc32

    def chunk(self, offset: int, data: bytes) -> bytes | None:
        """Take one chunk; return an acknowledgement to notify, if one is due."""
        with self._lock:
            state = self.slots.upload()
            if state is None:
                self._reject("no_upload")
                return None
            expected = state.offset + len(self._buffer)
            if offset != expected or expected + len(data) > state.size:
                self._reject("bad_offset" if offset != expected else "too_long")
                if self._rewound:
                    return None
                self._rewound = True
                return self._flush(rewind=True)
            self._rewound = False
            self.chunks += 1
            self._buffer += data
            if len(self._buffer) >= self.ack_bytes or expected + len(data) == state.size:
                return self._flush(rewind=False)
            return None

    def disconnected(self) -> None:
        """The link dropped: forget what is not durable (the host resumes from the last acknowledgement)."""
        with self._lock:
            self._buffer.clear()
            self._rewound = False

    def _flush(self, rewind: bool) -> bytes | None:
        state: Upload | None
        if self._buffer:
            current = self.slots.upload()
            if current is None:  # aborted meanwhile (another process on the folder)
                self._buffer.clear()
                self._reject("no_upload")
                return None
            try:
                state = self.slots.write_chunk(current.offset, bytes(self._buffer))
            except SlotError as exc:
                self._buffer.clear()
                self._reject(exc.reason)
                return None
            self._buffer.clear()
        else:
            state = self.slots.upload()
            if state is None:
                self._reject("no_upload")
                return None
        return encode_upload_ack(state.offset, state.crc32 & 0xFFFFFFFF, rewind)

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
