"""Waiting for something to become true, with a deadline: one loop for every caller."""

from __future__ import annotations

import time
from collections.abc import Callable

from configgen.errors import StackFailed


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    alive: Callable[[], None] | None = None,
) -> float:
    """Call `condition` until it is true; return the seconds that took. After `timeout`
    seconds, fail with StackFailed naming `what`. `alive`, called between tries, raises when
    waiting has become pointless (the process that should make `condition` true died)."""
    started = time.monotonic()
    while not condition():
        if alive is not None:
            alive()
        waited = time.monotonic() - started
        if waited > timeout:
            raise StackFailed(f"{what} (after {waited:.0f} s)")
        time.sleep(interval)
    return time.monotonic() - started
