"""What `configgen up` checks and decides before it starts anything: MLflow installed, the
ports free and chosen, a first user, the URL, and how to tell the stack is healthy."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import ipaddress
import secrets
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

from configgen import htpasswd, tls
from configgen.errors import StackFailed, UsageError
from configgen.stack import Project
from configgen.targets.local.data import DataDir

FIRST_USER = "admin"


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def prepare(project: Project, data: DataDir, host: str, say: Callable[[str], None],
            warn: Callable[[str], None]) -> str | None:  # fmt: skip
    """Everything `configgen up` checks and makes before it starts a process: MLflow, the
    certificate, the data folder and a first user, whose password it returns (None if the
    stack has users already)."""
    check_mlflow(project.stack.mlflow.version, say)
    if created := tls.ensure_self_signed(project):
        say(created)
    tls.check_own(project)
    if project.stack.tls.mode == "off" and not loopback(host):
        warn(tls.OFF_WARNING)
    data.prepare()
    return ensure_first_user(project)


def check_mlflow(version: str, say: Callable[[str], None]) -> None:
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError(
            f"MLflow is not installed in this Python environment ({sys.executable}); "
            "install it with `pip install 'configgen[local]'`"
        )
    installed = importlib.metadata.version("mlflow")
    if installed != version:
        say(f"warning: this environment has MLflow {installed}; the stack file pins {version}")


def free_port() -> int:
    """A loopback port nobody listens on now (the tests' and the bench's servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_ports_free(host: str, ports: tuple[int, int | None]) -> None:
    """Refuse ports another process holds, naming the option that picks each."""
    for port, option in zip(ports, ("--port", "--http-port"), strict=True):
        if port is not None:
            check_port_free(host, port, option)


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx does
        try:
            s.bind((host, port))
        except OSError as err:
            raise StackFailed(
                f"cannot listen on {host}:{port} ({err.strerror}); pick another port with "
                f"{option} N"
            ) from None


def ensure_first_user(project: Project) -> str | None:
    """With no users yet, create `admin` with a random password and return the password
    (the only time it is seen: only its bcrypt hash is stored)."""
    path = project.htpasswd
    if path.exists() and htpasswd.entries(path):
        return None
    password = secrets.token_urlsafe(18)
    htpasswd.add(path, FIRST_USER, htpasswd.hash_password(password, project.stack.auth.bcrypt_cost))
    return password


def url(host: str, port: int, https: bool) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
    scheme = "https" if https else "http"
    return f"{scheme}://{shown}:{port}" if ":" not in shown else f"{scheme}://[{shown}]:{port}"


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# The probe talks to the nginx this process started, by address: whether clients trust the
# certificate is theirs to check (a user's own may come from a private CA).
_PROBE_TLS = ssl.create_default_context()
_PROBE_TLS.check_hostname = False
_PROBE_TLS.verify_mode = ssl.CERT_NONE


def healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(  # noqa: S310 - our own http(s) URL
            f"{base_url}/health", timeout=2, context=_PROBE_TLS
        ) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ports(project: Project, port: int | None, http_port: int | None) -> tuple[int, int | None]:
    """(the port clients use, the plain-HTTP port for /health and redirects, None without
    TLS), from --port, --http-port and the stack file."""
    stack = project.stack
    if not stack.tls.enabled:
        return port or stack.proxy.port, None
    main, plain = port or stack.tls.port, http_port or stack.proxy.port
    if main == plain:
        raise UsageError(f"the HTTPS and HTTP ports are both {main}; pick another with "
                         "--port N or --http-port N")  # fmt: skip
    return main, plain
