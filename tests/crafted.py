"""Requests nobody meant to send, without credentials, and the proof that none reached MLflow.

nginx picks a location by the decoded, dot-resolved path; MLflow routes the raw one. Each
request below tries to make the two disagree (encoded `#`, `?`, `/` and `.`, `..` segments,
double slashes, absolute URIs, HTTP/1.0 without Host), to use the open `/health` location for
something else (other methods, bodies, smuggled or pipelined requests, rewriting headers), or
to reach what the stack keeps closed (server-info, the verifier, disabled features). The only
thing MLflow may ever see from them is `GET /health`.

Each runner's test sends the table through its real nginx and reads what MLflow saw: the
recording upstream's list (tests/recording.py) or MLflow's own access log (uvicorn's).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tests.localstack import RunningStack

BIG = 3 * 1024 * 1024  # a multi-MB body
GATEWAY = "/gateway/proxy/EP/v1/chat/completions"
SEARCH = "/api/2.0/mlflow/experiments/search"
JSON = "Content-Type: application/json\r\n"


@dataclass(frozen=True)
class Crafted:
    name: str
    head: str  # request line and headers, `{host}` filled in; CRLF line ends, no final CRLF
    body: bytes = b""

    def data(self, host: str) -> bytes:
        text = self.head.format(host=host)
        return text.encode("latin-1") + b"\r\n\r\n" + self.body


def _post(target: str, extra: str = "", version: str = "1.1") -> Crafted:
    host = "" if version == "1.0" else "Host: {host}\r\n"
    head = (
        f"POST {target} HTTP/{version}\r\n{host}{JSON}{extra}Content-Length: 2\r\nConnection: close"
    )
    return Crafted(f"POST {target} HTTP/{version}", head, b"{}")


def _get(target: str, extra: str = "", method: str = "GET") -> Crafted:
    head = f"{method} {target} HTTP/1.1\r\nHost: {{host}}\r\n{extra}Connection: close"
    return Crafted(f"{method} {target} {extra.strip()}".strip(), head)


_SMUGGLED = f"POST {GATEWAY} HTTP/1.1\r\nHost: x\r\n{JSON}Content-Length: 2\r\n\r\n{{}}"

TABLE: list[Crafted] = [
    # The report: decoded `#` is a path character to nginx, a path to MLflow.
    _post(f"{GATEWAY}%23/../../../../../../health"),
    _get(f"{GATEWAY}%23/../../../../../../health"),
    _post(f"{GATEWAY}%3F/../../../../../../health"),
    _post("/gateway/proxy/EP%2F..%2F..%2F..%2F..%2Fhealth"),
    _post("/gateway/proxy/EP/v1/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/health"),
    _post("/gateway/proxy/EP/v1/%252e%252e/%252e%252e/%252e%252e/health"),
    _get(f"{SEARCH}/../../../../../health"),
    _post("///gateway/proxy/EP/x%23/../../../../health"),
    _get("//health"),
    _get("/./health"),
    _get("/health/."),
    _get("/health;x=1"),
    _get("/health%00"),
    _get("/health%20"),
    _get("/HEALTH"),
    _get("/health?x=/../../gateway/proxy/EP"),
    _get("/health#/../gateway/proxy/EP"),
    # Absolute URIs in the request line, and HTTP/1.0 without Host.
    _get("http://evil.example/health"),
    _post(f"http://{{host}}{GATEWAY}%23/../../../../../../health"),
    Crafted("GET /health HTTP/1.0 without Host", "GET /health HTTP/1.0"),
    _post(f"{GATEWAY}%23/../../../../../../health", version="1.0"),
    # Other methods and bodies on the open location.
    _get("/health", method="OPTIONS"),
    _get("/health", method="TRACE"),
    _get("/health", method="DELETE"),
    _post("/health"),
    Crafted(
        "PUT /health, 3 MB",
        f"PUT /health HTTP/1.1\r\nHost: {{host}}\r\nContent-Length: {BIG}\r\nConnection: close",
        b"x" * BIG,
    ),
    Crafted(
        "GET /health, 3 MB body",
        f"GET /health HTTP/1.1\r\nHost: {{host}}\r\nContent-Length: {BIG}\r\nConnection: close",
        b"x" * BIG,
    ),
    Crafted(
        "GET /health, chunked body",
        "GET /health HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close",
        b"2\r\n{}\r\n0\r\n\r\n",
    ),
    Crafted("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: {host}\r\nConnection: close"),
    # Headers some frameworks route by, an upgrade, smuggling and pipelining.
    _get("/health", f"X-Original-URL: {SEARCH}\r\nX-Rewrite-URL: {SEARCH}\r\n"),
    _get("/health", "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Prefix: /gateway\r\n"),
    _get("/health", "Connection: Upgrade\r\nUpgrade: websocket\r\n"),
    Crafted(
        "GET /health smuggling a POST in its body",
        "GET /health HTTP/1.1\r\nHost: {host}\r\nContent-Length: "
        f"{len(_SMUGGLED)}\r\nTransfer-Encoding: chunked",
        _SMUGGLED.encode(),
    ),
    Crafted(
        "GET /health then a pipelined POST",
        "GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n"
        f"POST {GATEWAY}%23/../../../../../../health HTTP/1.1\r\nHost: {{host}}\r\n{JSON}"
        "Content-Length: 2\r\nConnection: close",
        b"{}",
    ),
    # What else is open or closed without a login.
    _get("/api/3.0/mlflow/server-info"),
    _post("/api/3.0/mlflow/server-info"),
    _get("/api/3.0/mlflow/server-info%3F/../../../../../health"),
    _get("/x%23/../api/3.0/mlflow/server-info"),
    _get("/_mlflow_auth"),
    _get("/_mlflow_auth%23/../../health"),
    _post("/gateway/mlflow/v1/chat/completions"),
    _post("/ajax-api/3.0/mlflow/assistant/message", "X-Forwarded-For: 127.0.0.1\r\n"),
    _post("/api/2.0/mlflow/experiments/create", "Origin: http://localhost:3000\r\n"),
    _get(SEARCH),
    _get("/health", method="HEAD"),
    _get("/health"),
]

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def send(host: str, port: int, data: bytes, tls: ssl.SSLContext | None = None) -> list[int]:
    """Send raw bytes, read until the server closes (or goes quiet); the statuses answered."""
    with socket.create_connection((host, port), timeout=10) as raw:
        conn = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        with contextlib.suppress(OSError):  # nginx may answer (413) and close before the end
            conn.sendall(data)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError, ssl.SSLError):
            pass
    return [int(code) for code in STATUS.findall(answer)]


# The table tests routing, not TLS: any certificate will do.
ANY_CERTIFICATE = ssl.create_default_context()
ANY_CERTIFICATE.check_hostname = False
ANY_CERTIFICATE.verify_mode = ssl.CERT_NONE


def send_table(host: str, port: int, header_host: str, tls: bool = False,
               extra_headers: str = "") -> dict[str, list[int]]:  # fmt: skip
    """Every request of TABLE; what nginx answered to each (every request gets an answer)."""
    answers = {}
    for crafted in TABLE:
        data = crafted.data(header_host)
        if extra_headers:
            data = data.replace(b"\r\n", f"\r\n{extra_headers}".encode(), 1)
        answers[crafted.name] = send(host, port, data, ANY_CERTIFICATE if tls else None)
    silent = [name for name, statuses in answers.items() if not statuses]
    assert not silent, f"no answer to {silent}"
    return answers


def send_to_stack(stack: RunningStack) -> dict[str, dict[str, list[int]]]:
    """The table to a stack's HTTPS port and, with TLS, to its plain-HTTP port too."""
    host = f"127.0.0.1:{stack.port}"
    answers = {"https" if stack.ca else "http": send_table("127.0.0.1", stack.port, host,
                                                           tls=bool(stack.ca))}  # fmt: skip
    if stack.http_port:
        answers["http"] = send_table("127.0.0.1", stack.http_port, host)
    return answers


ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')


def mlflow_requests(log: str) -> list[tuple[str, str]]:
    """(method, path) of each request in MLflow's access log (uvicorn's format)."""
    return [(m[1], m[2]) for m in ACCESS.finditer(log)]


def assert_only_health_reached_mlflow(
    read_log: Callable[[], str], send_everything: Callable[[], object],
    authenticated_get: Callable[[str], int],
) -> list[tuple[str, str]]:  # fmt: skip
    """Run `send_everything`, then prove from MLflow's access log that it reached nothing but
    `GET /health`. A marker request with a login, sent afterwards, shows that the log does
    record raw paths and is complete up to then. Returns what the table made MLflow see."""
    before = len(mlflow_requests(read_log()))
    send_everything()
    marker = f"{SEARCH}?max_results=1&marker={uuid.uuid4().hex}"
    assert authenticated_get(marker) == 200
    deadline = time.monotonic() + 30
    while True:
        seen = mlflow_requests(read_log())[before:]
        if ("GET", marker) in seen:
            break
        assert time.monotonic() < deadline, f"the marker never reached MLflow's log: {seen[-5:]}"
        time.sleep(0.2)
    seen = seen[: seen.index(("GET", marker))]
    others = [request for request in seen if request != ("GET", "/health")]
    assert others == [], f"crafted requests reached MLflow: {others}"
    return seen
