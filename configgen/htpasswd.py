"""The stack's users: the htpasswd file nginx checks, edited safely.

Passwords are stored as bcrypt (`$2y$`, which nginx, Apache's `htpasswd -v` and passlib all
read), written through passlib's `HtpasswdFile`. Every change holds an exclusive lock from read
to atomic replacement, so concurrent runs never lose each other's users and a crash leaves the
old file or the new one. Everything that can be refused is refused before the file is touched.
"""

from __future__ import annotations

import grp
import os
import stat
import time
import unicodedata
from pathlib import Path

from passlib.apache import HtpasswdFile, htpasswd_context

from configgen.errors import UsageError
from configgen.fileio import atomic_write, locked, make_private_dirs
from configgen.nginx import GENERATION_SUFFIX, WORKERS, WORKERS_GID

MAX_NAME_BYTES = 64
BCRYPT_MAX_BYTES = 72  # bcrypt ignores (bcrypt 5: refuses) anything longer
# Readable through the group by nginx's password checks (the compose verifier runs in the
# group of the mounted folder), never by others.
FILE_MODE = 0o640
FOLDER_MODE = 0o750


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def check_name(name: str) -> None:
    """Refuse a user name that nginx or the htpasswd format would misread."""
    if not name.strip():
        raise UsageError("user name is empty")
    if name != name.strip():
        raise UsageError(f"user name {name!r} starts or ends with whitespace")
    if ":" in name:
        raise UsageError(f"user name {name!r} contains ':', which separates name and hash")
    if _has_control(name):
        raise UsageError(f"user name {name!r} contains a control character")
    if name.startswith("#"):
        raise UsageError(f"user name {name!r} starts with '#', which marks a comment")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise UsageError(f"user name is longer than {MAX_NAME_BYTES} bytes")


def check_password(password: str, min_length: int) -> None:
    """Refuse a password that is empty, too short, or too long for bcrypt to use in full."""
    if not password:
        raise UsageError("password is empty")
    if len(password) < min_length:
        raise UsageError(
            f"password is {len(password)} characters; the stack requires at least {min_length} "
            "(auth.min_password_length)"
        )
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        raise UsageError(
            f"password is {len(password.encode())} bytes in UTF-8; bcrypt uses only the first "
            f"{BCRYPT_MAX_BYTES}, so it is refused rather than silently cut"
        )
    if _has_control(password):
        raise UsageError("password contains a control character")


def hash_password(password: str, cost: int) -> str:
    """A bcrypt hash at `cost` (log2 rounds), in the `$2y$` form Apache and nginx accept."""
    return htpasswd_context.copy(default="bcrypt", bcrypt__rounds=cost).hash(password)


def _check_lines(data: bytes, path: Path) -> None:
    """Refuse a file with a line nginx would misread; passlib skips some of them silently."""
    seen: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        where = f"{path}: line {number}"
        try:
            line.decode()
        except UnicodeDecodeError:
            raise UsageError(f"{where}: not UTF-8 text") from None
        name, _, hashed = stripped.partition(b":")
        if not name or not hashed or b":" in hashed:
            raise UsageError(f"{where}: not a 'name:hash' entry; fix or delete that line")
        if name in seen:
            raise UsageError(
                f"{where}: user {name.decode()!r} is already on line {seen[name]}; "
                "delete one of the two lines"
            )
        seen[name] = number


def load(path: Path) -> HtpasswdFile:
    """Read and check the htpasswd file at `path`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no htpasswd file; create it with `configgen htpasswd user add NAME`"
        ) from None
    except (PermissionError, IsADirectoryError) as err:
        raise UsageError(f"{path}: cannot read the htpasswd file ({err.strerror})") from None
    _check_lines(data, path)
    return HtpasswdFile.from_string(data)


def _load_or_new(path: Path) -> HtpasswdFile:
    return load(path) if path.exists() else HtpasswdFile()


def generation_path(path: Path) -> Path:
    return path.with_name(path.name + GENERATION_SUFFIX)


def _next_generation(path: Path) -> int:
    """A number never used before for this file: the previous one plus one, or the clock if
    that is ahead (a content hash would repeat when a removed user is added back)."""
    try:
        previous = int(generation_path(path).read_text().split()[1].rstrip(";"))
    except (FileNotFoundError, IndexError, ValueError):
        previous = 0
    return max(previous + 1, time.time_ns())


def _save(users: HtpasswdFile, path: Path) -> None:
    """Write the users, then the generation nginx keys its auth cache with (docs/auth.md)."""
    atomic_write(path, users.to_string(), FILE_MODE)
    generation = _next_generation(path)
    atomic_write(generation_path(path), f"generation {generation};\n".encode(), FILE_MODE)


def _require_user(users: HtpasswdFile, name: str, path: Path) -> None:
    if users.get_hash(name) is None:
        raise UsageError(
            f"{path}: no user {name!r}; see the users with `configgen htpasswd user list`"
        )


def _refuse_existing(users: HtpasswdFile, name: str, path: Path) -> None:
    if users.get_hash(name) is not None:
        raise UsageError(
            f"{path}: user {name!r} already exists; change the password with "
            f"`configgen htpasswd user passwd {name}`"
        )


def check_can_add(path: Path, name: str) -> None:
    """Fail early, before asking for a password, if `add` would be refused."""
    check_name(name)
    _refuse_existing(_load_or_new(path), name, path)


def check_can_change(path: Path, name: str) -> None:
    """Fail early, before asking for a password, if `passwd`/`verify` would be refused."""
    _require_user(load(path), name, path)


def prepare_folder(folder: Path) -> list[Path]:
    """Make the users folder (return the folders created). Its group is the one nginx's
    password checks read it through: its owner's, or www-data instead of root's, which would
    put the checks in group root; the setgid bit keeps it for every file written inside."""
    created = make_private_dirs(folder, FOLDER_MODE)
    if os.geteuid() == 0 and folder.stat().st_gid == 0:
        try:
            gid = grp.getgrnam(WORKERS).gr_gid
        except KeyError:
            gid = WORKERS_GID  # what it is in the nginx image, where the checks run
        os.chown(folder, -1, gid)
        for item in folder.iterdir():
            if item.is_file():
                os.chown(item, -1, gid)
        folder.chmod(FOLDER_MODE | stat.S_ISGID)
    return created


def add(path: Path, name: str, hashed: str) -> None:
    """Add a user with a hash from `hash_password` (computed outside the lock: it is slow)."""
    check_name(name)
    prepare_folder(path.parent)
    with locked(path):
        users = _load_or_new(path)
        _refuse_existing(users, name, path)
        users.set_hash(name, hashed)
        _save(users, path)


def change(path: Path, name: str, hashed: str) -> None:
    """Replace an existing user's hash."""
    with locked(path):
        users = load(path)
        _require_user(users, name, path)
        users.set_hash(name, hashed)
        _save(users, path)


def remove(path: Path, name: str) -> None:
    with locked(path):
        users = load(path)
        _require_user(users, name, path)
        users.delete(name)
        _save(users, path)


def entries(path: Path) -> list[tuple[str, str]]:
    """Each user, in file order, with the scheme of its hash ('bcrypt', 'apr_md5_crypt', ...)."""
    users = load(path)
    return [
        (name, htpasswd_context.identify(users.get_hash(name), required=False) or "unknown")
        for name in users.users()
    ]


def verify(path: Path, name: str, password: str) -> bool:
    users = load(path)
    _require_user(users, name, path)
    try:
        return bool(users.check_password(name, password))
    except ValueError:
        # passlib cannot read this entry's hash (or bcrypt refuses the password's length).
        return False
