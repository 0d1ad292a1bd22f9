"""Processes as /proc shows them (Linux): what `ps` reads, without running it."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped has stopped)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def command_line(pid: int) -> bytes:
    """The process's arguments, NUL-separated (b"" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def children(pid: int, marker: str = "") -> set[int]:
    """Processes whose parent is `pid` and whose command line contains `marker`."""
    return {p for p in pids() if parent(p) == pid and marker.encode() in command_line(p)}


def descendants(pid: int) -> set[int]:
    """Every process below `pid`."""
    parents = {p: parent(p) for p in pids()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found
