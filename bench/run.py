#!/usr/bin/env python3
"""What authentication costs: the stack's cached checks against the alternatives, in one run.

    python bench/run.py [--quick | --smoke] [--json PATH]

Starts on loopback one MLflow server (SQLite, 2 workers) and, in front of it, the variants:

    direct             MLflow alone
    proxy              nginx, no auth (the stack's proxy settings)
    basic-bcrypt12     nginx with plain auth_basic on a bcrypt cost-12 file
    stack              the stack's own rendered configuration (cached checks), cost 12
    mlflow-basic-auth  MLflow's own `--app-name basic-auth` (a second MLflow server)

and measures, with wrk (8 connections), GET experiments/get and POST runs/log-metric, the
variants taking turns over several rounds (medians are reported); then a 200 MB artifact up
and down with the MLflow client through `stack` and `direct`; then `stack` for a valid user,
and /health, while a second client floods wrong passwords from another address as fast as it
can; then the lock-out: a flood from eight addresses that fills the limits in all, and a
valid user whose check expires every second, against the stack and against the stack without
its rule for expired checks. Prints a Markdown table and the targets, as ratios measured in
this run (mostly the median of per-round ratios, which cancels this shared machine's slow
swings); --json writes the figures, per round too. Needs wrk (`apt-get install wrk`) and
`pip install '.[test]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from configgen import htpasswd, mlflow_server, nginx, stack, waiting
from configgen.container.server import BACKEND_STORE_VARIABLE
from configgen.errors import StackFailed
from configgen.targets.local import run_folder
from configgen.targets.local.startup import free_port

CONNECTIONS = 8
USER, PASSWORD = "bench", "bench-password-0123456789"
ADMIN_PASSWORD = "bench-admin-password-0123456789"
ARTIFACT_MB = 200
FLOOD_SOURCE = "127.0.0.2"  # the flood comes from another address than the valid client
FLOOD_CONNECTIONS = 16
# The lock-out measurement floods from eight addresses, none the valid client's (127.0.0.1),
# over more connections than auth.verify_burst: together they fill the limit in all, and past
# the burst checks are refused (not queued). A valid user whose check expired was then locked
# out; its variants check a credential again every second (the default is 60 s).
LOCKOUT_SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 10))
LOCKOUT_CONNECTIONS = 64


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answers (401 from an auth variant counts)
    except OSError:
        return False


def wait_until(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    def alive() -> None:
        if process.poll() is not None:
            sys.exit(f"bench: {process.args[0]} exited; see {log}")

    try:
        waiting.wait_until(lambda: answers(url), timeout, f"{url} did not answer", alive=alive)
    except StackFailed as err:
        sys.exit(f"bench: {err}; see {log}")


def start(argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip


def api(base: str, path: str, body: dict | None = None, auth: str | None = None) -> dict:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": auth} if auth else {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def request_seconds(url: str, auth: str | None) -> float:
    """How long one authenticated GET takes, alone."""
    started = time.monotonic()
    api(url, "/api/2.0/mlflow/experiments/get?experiment_id=0", auth=auth)
    return time.monotonic() - started


# -- the variants -------------------------------------------------------------------------


class Bench:
    def __init__(self, work: Path, stack_file: Path, exits: ExitStack) -> None:
        self.work = work
        self.exits = exits
        self.project = stack.read(stack_file)
        self.memory = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="mlflow-bench-"))
        exits.callback(shutil.rmtree, self.memory, ignore_errors=True)
        self.users = work / "secrets" / "htpasswd"
        self.users.parent.mkdir(mode=0o750)
        htpasswd.add(self.users, USER, htpasswd.hash_password(PASSWORD, 12))
        self.auth = basic(USER, PASSWORD)

    def keep(self, process: subprocess.Popen) -> None:
        def stop() -> None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

        self.exits.callback(stop)

    def artifact_store(self, name: str) -> Path:
        return self.memory / name / "artifacts"

    def mlflow(self, name: str, extra: list[str], env: dict | None = None) -> str:
        port = free_port()
        data = self.work / name
        data.mkdir()
        args = mlflow_server.server_args(
            self.project.stack, host="127.0.0.1", port=port,
            artifacts_destination=self.artifact_store(name).as_uri(),
        )  # fmt: skip
        environment = {
            **os.environ, **mlflow_server.server_environment(self.project.stack),
            BACKEND_STORE_VARIABLE: f"sqlite:///{data / 'mlflow.db'}", **(env or {}),
        }  # fmt: skip
        log = self.work / f"{name}.log"
        process = start([sys.executable, "-m", "mlflow", *args, *extra], log, environment)
        self.keep(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(f"{url}/health", process, log)
        return url

    def logs(self, variant: str) -> Path:
        return self.work / f"nginx-{variant}"

    def nginx(self, name: str, upstream: str, location: str | None,
              verifier_inside: bool = False, project: stack.Project | None = None,
              edit: Callable[[str], str] | None = None) -> str:  # fmt: skip
        """An nginx variant; `location` None means the stack's own rendered configuration
        (of `project`, by default the bench's), `edit` changes its mlflow-server.conf.
        `verifier_inside` puts the verifier's server into the serving nginx, as it was before
        nginx-verifier.conf (bench/verifier_placement.py compares the two)."""
        project = project or self.project
        logs = self.logs(name)
        logs.mkdir()
        # The configuration, the verifier's socket and the auth cache, as `configgen up` has
        # them (configgen/targets/local/run_folder.py): straight in /dev/shm, so that nginx's
        # workers (as www-data, when the bench runs as root) can pass through to them.
        run = run_folder.RunFolder(Path(tempfile.mkdtemp(dir="/dev/shm", prefix="mlflow-bench-")))
        self.exits.callback(shutil.rmtree, run.root, ignore_errors=True)
        port = free_port()
        runtime = run_folder.configure(project, run, logs, f"127.0.0.1:{port}",
                                       upstream=upstream.removeprefix("http://"))  # fmt: skip
        run.sync_users(self.users)
        conf = run.conf
        if edit is not None:
            (conf / "mlflow-server.conf").write_text(
                edit((conf / "mlflow-server.conf").read_text())
            )
        if location is not None:  # the same proxy settings, other auth
            main = (conf / "nginx.conf").read_text()
            main = main.replace("include mlflow-server.conf;", location)
            (conf / "nginx.conf").write_text(main)
        if verifier_inside:
            verifier = (conf / nginx.VERIFIER_CONF).read_text()
            server = verifier[verifier.index("    server {") : verifier.rindex("}")]
            main = (conf / nginx.MAIN_CONF).read_text()
            end = main.rindex("}")
            (conf / nginx.MAIN_CONF).write_text(main[:end] + server + main[end:])
        log = logs / "stderr.log"
        commands = run_folder.argvs(run_folder.find_nginx(), run, logs / "error.log")
        if location is not None or verifier_inside:
            del commands["auth verifier"]
        for argv in commands.values():
            process = start(argv, log)
            self.keep(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(f"{url}/health", process, log)
        if location is None:
            try:
                waiting.wait_until(Path(runtime.auth_socket).exists, 10, "no verifier socket")
            except StackFailed as err:
                sys.exit(f"bench: the verifier did not start ({err}); see {log}")
        return url


def no_auth_location() -> str:
    return "location / { include mlflow-proxy.conf; }"


def plain_basic_location(realm: str) -> str:
    return (
        f'location / {{ auth_basic "{realm}"; auth_basic_user_file secrets/htpasswd; '
        "include mlflow-proxy.conf; }"
    )


# -- measuring ------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def wrk(url: str, method: str, body: str | None, auth: str | None, seconds: float,
        work: Path) -> dict[str, float]:  # fmt: skip
    script = work / f"wrk-{os.getpid()}-{time.monotonic_ns()}.lua"
    script.write_text(WRK_SCRIPT.format(
        method=method, body=json.dumps(body) if body else "nil",
        auth=f'wrk.headers["Authorization"] = "{auth}"' if auth else "",
    ))  # fmt: skip
    done = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "failed": int(failed[1]) if failed else 0,
        "socket_errors": errors[0] if errors else "",
    }


def cpu_busy(interval: float = 0.2) -> float:
    """The machine's busy share of CPU time over `interval`, from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy_before, total_before = sample()
    time.sleep(interval)
    busy, total = sample()
    return (busy - busy_before) / max(total - total_before, 1)


def settle(limit: float = 10.0) -> None:
    """Wait until the previous measurement's work is done. wrk stops sending at its deadline,
    but a server may still be busy for a second: nginx with plain bcrypt auth_basic finishes
    every request it has started, about 0.25 s each, and would slow down whichever variant
    comes next."""
    deadline = time.monotonic() + limit
    while cpu_busy() > 0.25 and time.monotonic() < deadline:
        pass


def measure_variant(url: str, auth: str | None, run_id: str, seconds: float,
                    work: Path) -> dict[str, float]:  # fmt: skip
    settle()
    get = wrk(f"{url}/api/2.0/mlflow/experiments/get?experiment_id=0", "GET", None, auth,
              seconds, work)  # fmt: skip
    body = json.dumps({"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 0, "step": 0})
    settle()
    post = wrk(f"{url}/api/2.0/mlflow/runs/log-metric", "POST", body, auth, seconds, work)
    result = {f"get_{k}": v for k, v in get.items()} | {f"post_{k}": v for k, v in post.items()}
    return result


def artifact_throughput(url: str, auth: tuple[str, str] | None, memory: Path,
                        store: Path) -> tuple[float, float]:  # fmt: skip
    """Upload and download of one ARTIFACT_MB file with the MLflow client, in MB/s. The file,
    the download and MLflow's artifact `store` are in `memory` (tmpfs): this machine's virtual
    disk takes 200 MB in 0.6 s or in 1.4 s, at random, which would hide what the proxy costs."""
    from mlflow import MlflowClient

    if auth:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = auth
    else:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run("0").info.run_id
    blob = memory / "artifact.bin"
    if not blob.exists():
        blob.write_bytes(os.urandom(ARTIFACT_MB * 1024 * 1024))
    started = time.perf_counter()
    client.log_artifact(run_id, str(blob))
    up = ARTIFACT_MB / (time.perf_counter() - started)
    target = Path(tempfile.mkdtemp(dir=memory))
    started = time.perf_counter()
    client.download_artifacts(run_id, "artifact.bin", str(target))
    down = ARTIFACT_MB / (time.perf_counter() - started)
    shutil.rmtree(target)
    for stored in store.iterdir():
        shutil.rmtree(stored)
    return up, down


def flood_worker(url: str, seconds: float, counter: multiprocessing.Value,
                 sources: tuple[str, ...] = (FLOOD_SOURCE,),
                 connections: int = FLOOD_CONNECTIONS) -> None:  # fmt: skip
    """Wrong passwords, a new one each time (as a password guesser would), as fast as one
    process can send them over keep-alive connections from `sources`. It runs at the
    lowest CPU priority: a real attacker spends its own CPU, not the server's, and this
    bench measures what the flood costs the server."""
    os.nice(19)
    host, port = url.removeprefix("http://").split(":")
    guesses = iter(range(10**12))

    def request() -> bytes:
        return (
            f"GET /api/2.0/mlflow/experiments/get?experiment_id=0 HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {basic(USER, f'guess-{next(guesses)}')}\r\n\r\n"
        ).encode()

    async def one(source: str, deadline: float) -> int:
        sent = 0
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection(
                    host, int(port), local_addr=(source, 0)
                )
            except OSError:  # nginx's backlog is full for a moment: a flooder tries again
                await asyncio.sleep(0.01)
                continue
            try:
                while time.monotonic() < deadline:
                    writer.write(request())
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(re.search(rb"Content-Length: (\d+)", head, re.I)[1])
                    await reader.readexactly(length)
                    sent += 1
                    if b"Connection: close" in head:
                        break
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
        return sent

    async def main() -> int:
        deadline = time.monotonic() + seconds
        spread = [sources[i % len(sources)] for i in range(connections)]
        return sum(await asyncio.gather(*(one(source, deadline) for source in spread)))

    with counter.get_lock():
        counter.value += asyncio.run(main())


def health_latencies(url: str, stop: threading.Event, out: list[float],
                     errors: list[str]) -> None:  # fmt: skip
    """Probe /health every 20 ms until `stop`. A failed probe goes to `errors`, never kills
    the thread: a prober that died silently would leave its phase with fewer probes and no
    sign of why."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10):
                pass
        except Exception as err:  # any failure is a finding the report must carry
            errors.append(f"{type(err).__name__}: {err}")
        else:
            out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def hashed_guesses(auth_log: Path) -> int:
    """The flood's guesses that the verifier hashed (let through its limits, at once or after
    waiting their turn), from its log: one line per check."""
    if not auth_log.exists():
        return 0
    lines = auth_log.read_text().splitlines()
    return sum("client=127.0.0.1 " not in line and "limit=REJECTED" not in line for line in lines)


def lockout(url: str, auth: str, seconds: float, auth_log: Path,
            settings: stack.Auth) -> dict[str, float]:  # fmt: skip
    """A valid user sending one request every 50 ms (its check expiring every second) while a
    flood from LOCKOUT_SOURCES keeps the limits full: how many of its requests were refused,
    and how many guesses got hashed against what the limits allow (rate x time + burst). No
    wrk here: the flood must not starve for CPU while it fills the limits."""
    get = f"{url}/api/2.0/mlflow/experiments/get?experiment_id=0"

    def status() -> int:
        request = urllib.request.Request(get, headers={"Authorization": auth})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    if status() != 200:  # the user logged in before the flood began
        sys.exit(f"bench: {url} refused the valid user")
    counter = multiprocessing.Value("q", 0)
    flooder = multiprocessing.Process(
        target=flood_worker,
        args=(url, seconds + 10, counter, LOCKOUT_SOURCES, LOCKOUT_CONNECTIONS),
    )
    started = time.monotonic()
    flooder.start()
    while not auth_log.exists() or auth_log.read_text().count("limit=REJECTED") < 50:
        if time.monotonic() > started + 10:
            sys.exit("bench: the flood never filled the limits")
        time.sleep(0.1)
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.append(status())
        time.sleep(0.05)
    # Still flooding when stopped: a flood that died early would leave the limits free.
    flood_ran_to_the_end = flooder.is_alive()
    flooder.terminate()
    flooder.join()
    flooding = time.monotonic() - started
    return {
        "flood_ran_to_the_end": flood_ran_to_the_end,
        "valid_requests": len(statuses),
        "valid_refused": sum(s != 200 for s in statuses),
        "flood_seconds": round(flooding, 1),
        "guesses_hashed": hashed_guesses(auth_log),
        "guess_allowance": round(settings.verify_rate_total * flooding + settings.verify_burst),
    }


def flood(url: str, auth: str, seconds: float, rounds: int, work: Path,
          auth_log: Path | None = None) -> dict:  # fmt: skip
    """The valid user's throughput and /health's latency without, then with, the flood, in
    alternating rounds (medians). /health is probed in both phases, so that the two
    throughputs compare like for like. With the verifier's `auth_log`, also how many of the
    flood's checks it held back (proof that the flood came faster than its limit)."""
    get = f"{url}/api/2.0/mlflow/experiments/get?experiment_id=0"
    probe_errors: list[str] = []

    def probed() -> tuple[dict, list[float]]:
        latencies: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=health_latencies,
                                  args=(url, stop, latencies, probe_errors))  # fmt: skip
        prober.start()
        try:
            return wrk(get, "GET", None, auth, seconds, work), latencies
        finally:
            if not prober.is_alive():
                probe_errors.append("the /health prober stopped before its phase ended")
            stop.set()
            prober.join()

    alone, during, quiet, loud, failed, flooding = [], [], [], [], 0, 0.0
    sent, exit_codes = [], []
    for _ in range(rounds):
        figures, latencies = probed()
        alone.append(figures["rps"])
        quiet += latencies
        counter = multiprocessing.Value("q", 0)
        flooder = multiprocessing.Process(target=flood_worker, args=(url, seconds + 2, counter))
        started = time.monotonic()
        flooder.start()
        time.sleep(1)  # the flood is at full speed before measuring
        figures, latencies = probed()
        # The flooder ends when its last held-back guess is answered, past its deadline.
        flooder.join()
        flooding += time.monotonic() - started
        exit_codes.append(flooder.exitcode)
        during.append(figures["rps"])
        failed += figures["failed"]
        loud += latencies
        sent.append(counter.value)
    result = {
        "valid_rps_alone": statistics.median(alone),
        "valid_rps_during_flood": statistics.median(during),
        "valid_failed_during_flood": failed,
        "health_p99_ms_alone": round(p99(quiet), 1),
        "health_p99_ms_during_flood": round(p99(loud), 1),
        "health_probes": len(loud),
        "health_probes_alone": len(quiet),
        "health_probe_errors": probe_errors,
        "health_over_100ms_alone": sum(ms > 100 for ms in quiet),
        "health_over_100ms_during_flood": sum(ms > 100 for ms in loud),
        "flood_requests_per_s": round(sum(sent) / flooding, 1),
        "flood_seconds": round(flooding, 1),
        "flood_exit_codes": exit_codes,
        "rounds_flood_requests": sent,
        "rounds_valid_rps_alone": alone,
        "rounds_valid_rps_during_flood": during,
    }
    if auth_log is not None:
        lines = [x for x in auth_log.read_text().splitlines() if f"client={FLOOD_SOURCE} " in x]
        result["flood_checks"] = len(lines)
        result["flood_checks_delayed"] = sum("limit=DELAYED" in x for x in lines)
    return result


# -- the report -------------------------------------------------------------------------------

VARIANTS = ("direct", "proxy", "basic-bcrypt12", "stack", "mlflow-basic-auth")
# The order the variants take turns in: the compared pairs side by side.
ROTATION = ("direct", "proxy", "stack", "basic-bcrypt12", "mlflow-basic-auth")


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of per-round ratios: each round's two figures were measured minutes apart
    at most, so the ratio cancels this shared machine's slow swings (which move both)."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b > 0]
    # A baseline with no completed request in a round (a very short --smoke round on a busy
    # machine) gives no ratio; the target then shows nan and is not met.
    return statistics.median(ratios) if ratios else math.nan


def targets(result: dict) -> list[tuple[str, float, str, bool]]:
    r, a, f, lock = result["rounds_rps"], result["artifact"], result["flood"], result["lockout"]
    rows = [
        ("stack / proxy, GET", paired(r["stack"]["get"], r["proxy"]["get"]), ">= 0.90"),
        ("stack / proxy, POST", paired(r["stack"]["post"], r["proxy"]["post"]), ">= 0.90"),
        ("stack / basic-bcrypt12, GET",
         paired(r["stack"]["get"], r["basic-bcrypt12"]["get"]), ">= 10"),
        # A transfer's speed jumps by half either way from one to the next, with no drift to
        # cancel: the ratio of the medians is the steadier figure here.
        ("upload through stack / direct", a["stack_up_MBps"] / a["direct_up_MBps"], ">= 0.80"),
        ("download through stack / direct",
         a["stack_down_MBps"] / a["direct_down_MBps"], ">= 0.80"),
        ("valid rps during flood / alone",
         paired(f["rounds_valid_rps_during_flood"], f["rounds_valid_rps_alone"]), ">= 0.80"),
        ("valid requests refused, limits full", lock["valid_refused"], "<= 0"),
        ("  the same without the stale rule (baseline)",
         result["lockout_without_stale"]["valid_refused"], "> 0"),
        ("guesses hashed / (rate x time + burst)",
         lock["guesses_hashed"] / lock["guess_allowance"], "<= 1"),
        ("/health p99 during flood (ms)", f["health_p99_ms_during_flood"], "< 250"),
        ("stack / direct, GET (stretch)", paired(r["stack"]["get"], r["direct"]["get"]), "> 1"),
        ("stack / direct, POST (stretch)",
         paired(r["stack"]["post"], r["direct"]["post"]), "> 1"),
    ]  # fmt: skip
    checked = []
    for name, value, goal in rows:
        op, bound = goal.split()
        ok = {"<": value < float(bound), ">": value > float(bound), ">=": value >= float(bound),
              "<=": value <= float(bound)}[op]  # fmt: skip
        checked.append((name, value, goal, ok))
    return checked


def markdown(result: dict) -> str:
    lines = [
        "| variant | GET req/s | GET p50 ms | GET p99 ms "
        "| POST req/s | POST p50 ms | POST p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in VARIANTS:
        r = result["variants"][name]
        lines.append(
            f"| {name} | {r['get_rps']:.0f} | {r['get_p50_ms']:.1f} | {r['get_p99_ms']:.1f} "
            f"| {r['post_rps']:.0f} | {r['post_p50_ms']:.1f} | {r['post_p99_ms']:.1f} |"
        )
    a, f, lock = result["artifact"], result["flood"], result["lockout"]
    lines += [
        "",
        f"| {ARTIFACT_MB} MB artifact | up MB/s | down MB/s |",
        "| --- | ---: | ---: |",
        f"| direct | {a['direct_up_MBps']:.0f} | {a['direct_down_MBps']:.0f} |",
        f"| stack | {a['stack_up_MBps']:.0f} | {a['stack_down_MBps']:.0f} |",
        "",
        f"Flood of wrong passwords from {FLOOD_SOURCE} over {FLOOD_CONNECTIONS} connections, "
        f"answered at {f['flood_requests_per_s']:.1f} req/s: "
        f"valid user {f['valid_rps_during_flood']:.0f} req/s (alone "
        f"{f['valid_rps_alone']:.0f}), /health p99 {f['health_p99_ms_during_flood']:.0f} ms "
        f"(alone {f['health_p99_ms_alone']:.0f}) over {f['health_probes']} probes.",
        "",
        f"Flood from {len(LOCKOUT_SOURCES)} addresses over {LOCKOUT_CONNECTIONS} connections, "
        f"the limits full, a valid user's check expiring every second: {lock['valid_refused']} "
        f"of its {lock['valid_requests']} requests refused (without the stale rule: "
        f"{result['lockout_without_stale']['valid_refused']} of "
        f"{result['lockout_without_stale']['valid_requests']}); {lock['guesses_hashed']} "
        f"guesses hashed in {lock['flood_seconds']:.0f} s, the limits allowing "
        f"{lock['guess_allowance']}.",
        "",
        "| target | measured | goal | met |",
        "| --- | ---: | --- | --- |",
    ]
    for name, value, goal, ok in targets(result):
        lines.append(f"| {name} | {value:.2f} | {goal} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


def environment() -> dict[str, str]:
    import mlflow

    nginx_bin = run_folder.find_nginx()
    nginx_version = subprocess.run([nginx_bin, "-v"], capture_output=True, text=True).stderr
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "nginx": nginx_version.strip().removeprefix("nginx version: "),
        "nginx_binary": nginx_bin,
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 rounds of 2 s per measurement, not 6 of 5 s"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true",
        help="1 round of 1 s: checks that the bench runs (the test suite's), figures mean little",
    )  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is missing; install it with `apt-get install wrk`")
    # Consecutive runs of one variant differ by up to a third here (5 s) or half (2 s):
    # enough rounds for the medians to settle.
    # --smoke: one round of at least 2 s (longer on a busy machine: see below).
    rounds_count, seconds = (1, 2) if args.smoke else (5, 2) if args.quick else (6, 5)
    artifact_rounds = 2 if args.smoke else 6  # even: each variant goes first in half of them

    with ExitStack() as exits:
        work = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-bench-")))
        stack_file = work / "stack.yaml"
        stack_file.write_text("auth:\n  bcrypt_cost: 12\n")  # the default, spelled out
        bench = Bench(work, stack_file, exits)
        print("starting MLflow and the variants ...", file=sys.stderr)
        direct = bench.mlflow("direct", [])
        admin = basic("admin", ADMIN_PASSWORD)
        auth_ini = work / "basic_auth.ini"
        auth_ini.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{work / 'basic_auth.db'}\nadmin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        mlflow_auth = bench.mlflow("mlflow-basic-auth", ["--app-name", "basic-auth"], {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
        })  # fmt: skip
        urls = {
            "direct": (direct, None),
            "proxy": (bench.nginx("proxy", direct, no_auth_location()), None),
            "basic-bcrypt12": (
                bench.nginx("basic", direct, plain_basic_location("MLflow")),
                bench.auth,
            ),
            "stack": (bench.nginx("stack", direct, None), bench.auth),
            "mlflow-basic-auth": (mlflow_auth, admin),
        }
        runs = {
            "direct": api(direct, "/api/2.0/mlflow/runs/create", {"experiment_id": "0"}),
            "mlflow-basic-auth": api(
                mlflow_auth, "/api/2.0/mlflow/runs/create", {"experiment_id": "0"}, admin
            ),
        }
        result: dict = {
            "environment": environment(), "rounds": rounds_count, "seconds_per_round": seconds,
        }  # fmt: skip
        for url, auth in urls.values():  # warm-up (and the first check of the credential)
            wrk(f"{url}/api/2.0/mlflow/experiments/get?experiment_id=0", "GET", None, auth, 1,
                work)  # fmt: skip
        if args.smoke:
            # Long enough for every variant to answer, on this machine as busy as it is now:
            # a few times the slowest variant's single request (bcrypt at cost 12, plainly).
            slowest = max(request_seconds(url, auth) for url, auth in urls.values())
            seconds = max(seconds, math.ceil(4 * slowest))
            result["seconds_per_round"] = seconds
        # The variants take turns, round after round, so that a slow moment of this shared
        # machine does not land on one of them only; each figure is the median of its rounds.
        samples: dict[str, list[dict]] = {name: [] for name in VARIANTS}
        for round_number in range(rounds_count):
            print(f"round {round_number + 1} of {rounds_count} ...", file=sys.stderr)
            turn = round_number % len(ROTATION)
            order = ROTATION[turn:] + ROTATION[:turn]
            for name in order:
                url, auth = urls[name]
                run = runs["mlflow-basic-auth" if name == "mlflow-basic-auth" else "direct"]
                samples[name].append(
                    measure_variant(url, auth, run["run"]["info"]["run_id"], seconds, work)
                )
        result["variants"] = {
            name: {key: statistics.median(s[key] for s in rounds)
                   for key in rounds[0] if key.endswith(("rps", "ms"))}
            | {key: sum(s[key] for s in rounds) for key in ("get_failed", "post_failed")}
            for name, rounds in samples.items()
        }  # fmt: skip
        result["rounds_rps"] = {
            name: {"get": [s["get_rps"] for s in rounds], "post": [s["post_rps"] for s in rounds]}
            for name, rounds in samples.items()
        }  # fmt: skip
        print("artifacts ...", file=sys.stderr)
        settle()
        # One transfer varies a lot on a shared machine: the median of rounds, interleaved.
        transfers = {"stack": (urls["stack"][0], (USER, PASSWORD)), "direct": (direct, None)}
        moved: dict = {name: {"up": [], "down": []} for name in transfers}
        for round_number in range(artifact_rounds):
            # Each goes first in half the rounds.
            for name in sorted(transfers, reverse=bool(round_number % 2)):
                settle()
                up, down = artifact_throughput(
                    *transfers[name], bench.memory, bench.artifact_store("direct")
                )
                moved[name]["up"].append(round(up, 1))
                moved[name]["down"].append(round(down, 1))
        result["artifact"] = {
            f"{name}_{way}_MBps": statistics.median(moved[name][way])
            for name in transfers for way in ("up", "down")
        }  # fmt: skip
        result["artifact_rounds"] = moved
        print("flood ...", file=sys.stderr)
        settle()
        # At least 4 s per phase: /health p99 needs a few hundred probes to be a p99 at all.
        result["flood"] = flood(urls["stack"][0], bench.auth, max(seconds, 4), rounds_count, work,
                                bench.logs("stack") / "nginx-auth.log")  # fmt: skip
        limits = bench.project.stack.auth
        result["flood"]["limit_per_client"] = {
            "rate_per_s": limits.verify_rate_per_client, "burst": limits.verify_burst,
        }  # fmt: skip
        # The lock-out: the stack as it is, and as it was without its rule for expired checks.
        lockout_file = work / "lockout-stack.yaml"
        lockout_file.write_text("auth:\n  bcrypt_cost: 12\n  cache_seconds: 1\n")
        lockout_project = stack.read(lockout_file)
        without_stale = re.compile(r"\n\s*proxy_cache_use_stale [^;]*;")
        variants = {"lockout": None, "lockout_without_stale": lambda c: without_stale.sub("", c)}
        for name, edit in variants.items():
            settle()
            url = bench.nginx(name, direct, None, project=lockout_project, edit=edit)
            result[name] = lockout(url, bench.auth, 2 * seconds,
                                   bench.logs(name) / "nginx-auth.log",
                                   lockout_project.stack.auth)  # fmt: skip

    for name, figures in result["variants"].items():
        if figures["get_failed"] or figures["post_failed"]:
            print(f"warning: {name} had failed requests: {figures}", file=sys.stderr)
    if result["flood"]["health_probe_errors"]:
        print(f"warning: /health probes failed: {result['flood']['health_probe_errors'][:5]}",
              file=sys.stderr)  # fmt: skip
    print(markdown(result))
    result["targets"] = {name: {"measured": round(value, 3), "goal": goal, "met": ok}
                         for name, value, goal, ok in targets(result)}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
