"""Settings from the environment, the way the official database images read them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from configgen.errors import UsageError


def file_env(name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """`NAME`, or the content of the file `NAME_FILE` names (without its final newline).

    The `_FILE` form keeps secrets out of `ps`, `docker inspect` and the shell history.
    """
    file_name = f"{name}_FILE"
    if name in environ and file_name in environ:
        raise UsageError(f"both {name} and {file_name} are set; unset one of them")
    if file_name not in environ:
        return environ.get(name)
    path = environ[file_name]
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UsageError(f"{file_name}: {path} is not UTF-8 text") from None
    except OSError as err:
        raise UsageError(f"{file_name}: cannot read {path} ({err.strerror})") from None
