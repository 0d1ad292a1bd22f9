"""`configgen htpasswd user ...`: real files, checked by Apache's own `htpasswd -v`."""

from __future__ import annotations

import grp
import os
import pty
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configgen import fileio
from tests.support import PASSWORD, REPO, Configgen, clean_env, run_configgen, snapshot

HTPASSWD = Path("secrets/nginx/htpasswd")


def apache_accepts(path: Path, name: str, password: str) -> bool:
    """Apache's htpasswd (Debian apache2-utils) verifies the entry itself."""
    assert shutil.which("htpasswd"), "apache2-utils is installed by tests/run.sh"
    done = subprocess.run(
        ["htpasswd", "-vb", str(path), name, password], capture_output=True, text=True
    )
    return done.returncode == 0


def add(configgen: Configgen, name: str, password: str = PASSWORD):
    return configgen("htpasswd", "user", "add", name, "--password-stdin", stdin=password + "\n")


def test_add_writes_a_bcrypt_entry_apache_accepts(configgen: Configgen, project: Path):
    done = add(configgen, "alice")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"added user alice to {HTPASSWD}\n"
    path = project / HTPASSWD
    line = path.read_text()
    assert line.startswith("alice:$2y$04$"), line  # the stack's cost, in the $2y$ form
    assert PASSWORD not in line
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    folder = path.parent.stat()
    assert stat.S_IMODE(folder.st_mode) & 0o777 == 0o750  # nginx's group may enter
    if os.geteuid() == 0:  # that group is www-data, never root's, and stays with new files
        assert folder.st_gid == grp.getgrnam("www-data").gr_gid != 0
        assert folder.st_mode & stat.S_ISGID
        assert path.stat().st_gid == folder.st_gid
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700  # secrets/: nobody else
    assert apache_accepts(path, "alice", PASSWORD)
    assert not apache_accepts(path, "alice", PASSWORD + "!")


def test_default_cost_is_12(tmp_path: Path):
    path = tmp_path / "users"
    # No stack file around: --htpasswd alone works with the default settings.
    done = run_configgen(
        "htpasswd",
        "user",
        "add",
        "bob",
        "--htpasswd",
        str(path),
        "--password-stdin",
        cwd=tmp_path,
        stdin=PASSWORD,
    )
    assert done.returncode == 0, done.stderr
    assert path.read_text().startswith("bob:$2y$12$")
    assert apache_accepts(path, "bob", PASSWORD)


def test_passwd_verify_remove_list(configgen: Configgen, project: Path):
    path = project / HTPASSWD
    for name in ("alice", "bob", "carol"):
        assert add(configgen, name).returncode == 0

    new = "a different passphrase"
    done = configgen("htpasswd", "user", "passwd", "bob", "--password-stdin", stdin=new)
    assert done.returncode == 0, done.stderr
    assert apache_accepts(path, "bob", new)
    assert not apache_accepts(path, "bob", PASSWORD)

    verify = ("htpasswd", "user", "verify", "bob", "--password-stdin")
    assert configgen(*verify, stdin=new).returncode == 0
    wrong = configgen(*verify, stdin=PASSWORD)
    assert (wrong.returncode, wrong.stderr) == (1, "configgen: wrong password for bob\n")

    assert configgen("htpasswd", "user", "remove", "alice").returncode == 0
    listed = configgen("htpasswd", "user", "list")
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "bob\ncarol\n", "")
    assert not apache_accepts(path, "alice", PASSWORD)
    assert apache_accepts(path, "carol", PASSWORD)


def test_foreign_lines_and_weak_hashes_are_kept_and_flagged(configgen: Configgen, project: Path):
    path = project / HTPASSWD
    path.parent.mkdir(parents=True)
    # An entry made by Apache's tool with its default (apr1/MD5) hash, and a comment.
    subprocess.run(["htpasswd", "-cbm", str(path), "legacy", "old password 1"], check=True)
    path.write_text("# team A\n" + path.read_text())
    assert add(configgen, "alice").returncode == 0
    text = path.read_text()
    assert text.startswith("# team A\nlegacy:$apr1$")
    assert apache_accepts(path, "legacy", "old password 1")
    listed = configgen("htpasswd", "user", "list")
    assert listed.stdout == "legacy\nalice\n"
    assert "legacy is stored as apr_md5_crypt, weaker than bcrypt" in listed.stderr
    assert "configgen htpasswd user passwd legacy" in listed.stderr


def test_replacement_keeps_group_and_mode(configgen: Configgen, project: Path):
    assert add(configgen, "alice").returncode == 0
    path = project / HTPASSWD
    os.chown(path, -1, 33)  # e.g. the group nginx's workers run in (www-data)
    assert add(configgen, "bob").returncode == 0
    st = path.stat()
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (33, 0o640)


def test_twenty_concurrent_adds_keep_every_user(project: Path):
    """An exclusive lock around read-modify-write: no add is lost to a concurrent one."""
    names = [f"user{i:02d}" for i in range(20)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "configgen", "htpasswd", "user", "add", n, "--password-stdin"],
            cwd=project,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        for n in names
    ]
    for proc in procs:
        proc.stdin.write(f"{PASSWORD}\n".encode())
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    path = project / HTPASSWD
    lines = path.read_text().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == names
    assert all(apache_accepts(path, n, PASSWORD) for n in (names[0], names[-1]))
    # Only the file and its generation: temp files are renamed, locks leave nothing behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["htpasswd", "htpasswd.generation"]
    assert re.fullmatch(r"generation [0-9]+;\n", (path.parent / "htpasswd.generation").read_text())


def test_every_change_gets_a_new_generation(configgen: Configgen, project: Path):
    """nginx keys its auth cache with it: it must never repeat, even when the users do."""
    generation = project / HTPASSWD.with_name("htpasswd.generation")
    seen = []
    for args in (["add", "alice"], ["add", "bob"], ["remove", "bob"], ["passwd", "alice"]):
        stdin = PASSWORD if args[0] != "remove" else None
        extra = ["--password-stdin"] if stdin else []
        assert configgen("htpasswd", "user", *args, *extra, stdin=stdin).returncode == 0
        seen.append(int(generation.read_text().split()[1].rstrip(";")))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "htpasswd"
    path.write_bytes(b"old\n")

    def crash(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        fileio.atomic_write(path, b"new\n", 0o640)
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["htpasswd"]


def _on_terminal(cwd: Path, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run configgen on a pseudo-terminal, typing `answers` at its prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes configgen, its stdin a terminal
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "configgen", *args], clean_env())
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        output += chunk
        if answers and output.rstrip().endswith(b":"):
            os.write(fd, answers.pop(0).encode() + b"\n")
            output += b"<typed>\n"
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode()


def test_prompt_asks_twice_without_echo(project: Path):
    code, screen = _on_terminal(project, ["htpasswd", "user", "add", "alice"], [PASSWORD, PASSWORD])
    assert code == 0, screen
    assert "New password for alice:" in screen
    assert "Type it again:" in screen
    assert PASSWORD not in screen  # not echoed
    assert apache_accepts(project / HTPASSWD, "alice", PASSWORD)


def test_prompt_mismatch_changes_nothing(project: Path):
    before = snapshot(project)
    code, screen = _on_terminal(
        project, ["htpasswd", "user", "add", "alice"], [PASSWORD, PASSWORD + "x"]
    )
    assert code == 2
    assert "the two passwords differ; nothing was changed" in screen
    assert snapshot(project) == before


def test_help_everywhere():
    for args in (
        [],
        ["init"],
        ["render"],
        ["htpasswd"],
        ["htpasswd", "user"],
        *(["htpasswd", "user", a] for a in ("add", "remove", "passwd", "list", "verify")),
    ):
        done = run_configgen(*args, "--help", cwd=REPO)
        assert done.returncode == 0, args
        assert done.stdout.startswith("usage: configgen"), args
        assert "exit codes: 0 success" in done.stdout, args
