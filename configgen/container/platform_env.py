"""The platform image's settings from its environment (docs/platform.md).

A stand-in on the heroku branch: only what `configgen heroku` needs. The lead's full module
(PORT, DATABASE_URL, artifacts, hosts, ...) replaces this file when the branches merge.
"""

from __future__ import annotations


def workers_for_memory(megabytes: int) -> int:
    """MLflow workers that fit in `megabytes` with headroom: about 200 MB for nginx, the
    supervisor and uvicorn's parent, then about 300 MB per worker. 512 MB: 1; 1 GB: 2;
    never more than 4."""
    return max(1, min(4, (megabytes - 200) // 300))
