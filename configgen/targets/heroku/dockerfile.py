"""What a Dockerfile copies from its build context (COPY and ADD sources), and whether each is
inside it: Heroku builds in the Dockerfile's own folder, so a source outside it (or missing)
fails the build on Heroku's builders only, after a push."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

INSTRUCTION = re.compile(r"\s*(COPY|ADD)\s+(.*)", re.IGNORECASE | re.DOTALL)
HEREDOC = re.compile(r"<<-?[\"']?([A-Za-z_]\w*)[\"']?")
GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    line: int  # where the instruction starts, for messages
    instruction: str  # COPY or ADD
    path: str


def _instructions(text: str) -> list[tuple[int, str]]:
    """(first line, instruction) with continuation lines joined, comments and heredoc bodies
    left out."""
    found: list[tuple[int, str]] = []
    lines = text.splitlines()
    current: list[str] = []
    start = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction is dropped, as docker does
        if not current:
            start = index
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            current.append(stripped[:-1])
            continue
        current.append(stripped)
        joined = " ".join(part.strip() for part in current)
        current = []
        found.append((start, joined))
        for word in HEREDOC.findall(joined):
            # A heredoc's body is the file's content, not instructions: skip to its end.
            while index < len(lines) and lines[index].strip() != word:
                index += 1
            index += 1
    if current:
        found.append((start, " ".join(part.strip() for part in current)))
    return found


def _arguments(rest: str) -> list[str] | None:
    """The sources and destination of COPY/ADD, flags removed; None when the instruction
    copies from another stage or image (--from), not from the build context."""
    rest = rest.strip()
    words = rest.split()
    flags = []
    while words and words[0].startswith("--"):
        flags.append(words.pop(0))
    if any(flag.startswith("--from") for flag in flags):
        return None
    remainder = " ".join(words)
    if remainder.startswith("["):
        try:
            parsed = json.loads(remainder)
        except json.JSONDecodeError:
            return words
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return words


def sources(text: str) -> list[Source]:
    """Every build-context path the Dockerfile `text` copies. Sources the context does not
    hold are left out: URLs and git repositories (ADD), heredocs, ${VARIABLES}."""
    found = []
    for line, instruction in _instructions(text):
        match = INSTRUCTION.match(instruction)
        if not match:
            continue
        arguments = _arguments(match.group(2))
        if not arguments or len(arguments) < 2:
            continue
        for path in arguments[:-1]:
            if "$" in path or path.startswith("<<") or "://" in path or path.startswith("git@"):
                continue
            found.append(Source(line, match.group(1).upper(), path))
    return found


def _inside(path: str) -> str | None:
    """`path` relative to the context's root, normalized; None if it leaves the context.
    Docker reads an absolute source from the context's root too."""
    relative = os.path.normpath(PurePosixPath(path.lstrip("/") or ".").as_posix())
    if relative == ".." or relative.startswith("../"):
        return None
    return relative


def check(dockerfile: Path, shown: str) -> list[str]:
    """One line for every COPY/ADD source of `dockerfile` outside its folder or missing there.
    `shown` is the Dockerfile as messages name it."""
    context = dockerfile.parent
    where = f"{PurePosixPath(shown).parent}/"
    problems = []
    for source in sources(dockerfile.read_text(encoding="utf-8", errors="replace")):
        said = f"{shown}: line {source.line}: {source.instruction} {source.path}"
        relative = _inside(source.path)
        if relative is None:
            problems.append(
                f"{said}: outside {where}, the build context Heroku uses (the Dockerfile's "
                "folder); move what it copies into that folder"
            )
        elif GLOB.search(relative):
            if not any(context.glob(relative)):
                problems.append(f"{said}: matches nothing in {where}")
        elif not (context / relative).exists():
            problems.append(f"{said}: no such file in {where}")
    return problems
