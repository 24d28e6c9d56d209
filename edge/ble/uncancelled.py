"""Wait for a bumble operation with a deadline, without ever cancelling it.

bumble's HCI layer has one command in flight at a time and matches each command's answer to the
command still pending. Cancelling a command halfway (what ``asyncio.wait_for`` does on timeout) can
leave its answer to arrive while the *next* command waits, which then takes the wrong answer; a
disconnection cancelled that way can stop the advertising restart that follows it, and the device
is never seen again. So the operation is left to finish on its own, and only the wait has a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def finish_within(operation: Awaitable[Any], timeout_s: float, keep: set[asyncio.Future[Any]]) -> bool:
    """Wait up to ``timeout_s`` for ``operation``; True if it finished in time.

    Parameters
    ----------
    operation
        The bumble call (a coroutine or future). Its own exception, if it finished with one, is raised.
    timeout_s
        How long to wait.
    keep
        Where an operation still running after the deadline is kept until it ends (a task nobody
        references may be garbage-collected mid-way).
    """
    task = asyncio.ensure_future(operation)
    keep.add(task)
    task.add_done_callback(keep.discard)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if task not in done:
        return False
    task.result()
    return True
