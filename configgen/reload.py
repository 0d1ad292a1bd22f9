"""Reloading nginx so that a users change applies to the very next request.

SIGHUP makes nginx start new workers with the new configuration (and so the new auth cache
generation) and ask the old ones to finish; until they have, an old worker may still take a
request. Waiting for the old workers to be gone makes `--reload` mean "done".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

RELOAD_TIMEOUT = 10.0


def reload_and_wait(
    workers: Callable[[], set[Hashable]],
    send_hup: Callable[[], None],
    timeout: float = RELOAD_TIMEOUT,
) -> bool:
    """Send SIGHUP, then wait until none of the workers from before is left; False if some
    still run after `timeout` (a long request keeps its worker: the reload still happens)."""
    before = workers()
    send_hup()
    deadline = time.monotonic() + timeout
    while workers() & before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
