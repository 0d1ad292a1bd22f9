"""`configgen heroku check`: app.json, heroku.yml and the users value, checked offline.

Heroku has no dry run: a wrong app.json fails the Deploy button after the user filled its form,
a Dockerfile that copies from outside its folder fails on Heroku's builder, a missing release
phase leaves the schema unmigrated, and an apr1 users value is refused by the image at start.
Each problem is one line naming the file and the key. No value of a variable that may hold a
secret is ever printed.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from configgen.container import users
from configgen.container.platform_env import workers_for_memory
from configgen.errors import UsageError
from configgen.stack import Project
from configgen.targets.heroku import dockerfile, settings

SCHEMA = "app-json.schema.json"
HEROKU_YML_KEYS = ("setup", "build", "release", "run")
# An htpasswd entry of any kind (NAME:HASH), in a value where it would be public.
HTPASSWD_ENTRY = re.compile(r"[^:\s]+:(\$(2[aby]|apr1|1|5|6|y)\$|\{SHA\})")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    users: str = ""  # which users value was checked, for the summary; empty if none


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads((importlib.resources.files(__package__) / SCHEMA).read_text())


def _where(path: Any) -> str:
    """A JSON path as a reader writes it: env.WEB_CONCURRENCY.value, addons[0].plan."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "the top level"


def _schema_message(error: jsonschema.ValidationError) -> str:
    """What the schema refuses, without the refused value (it may be a secret); enums hold
    only names (a size, a generator), which are safe to repeat."""
    kind, expected = error.validator, error.validator_value
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return f"must be {' or '.join(map(str, types))}"
    if kind == "enum":
        shown = f"{error.instance!r} " if isinstance(error.instance, str) else ""
        return f"{shown}is not one of {', '.join(map(str, expected))}"
    if kind == "pattern":
        return f"does not match {expected}"
    if kind in ("required", "additionalProperties"):
        return str(error.message)  # these name keys, not values
    if kind in ("minimum", "minLength", "maxLength"):
        return f"fails {kind} {expected}"
    return f"fails the schema's {kind} rule"


def check_schema(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(schema())
    # Sorted by where, so that the lines come in the same order on every run.
    errors = sorted(validator.iter_errors(document), key=lambda e: [*map(str, e.path), e.message])
    return [f"{settings.APP_JSON}: {_where(e.path)}: {_schema_message(e)}" for e in errors]


def _env_entry(entry: Any) -> dict[str, Any]:
    """An env entry as an object: the string form is its value."""
    return {"value": entry} if isinstance(entry, str) else entry if isinstance(entry, dict) else {}


def _check_env(env: Mapping[str, Any], size: str | None) -> list[str]:
    name = settings.APP_JSON
    problems = []
    if users.VARIABLE not in env:
        problems.append(
            f"{name}: env.{users.VARIABLE} missing: the Deploy button would not ask for the "
            "users, and the image refuses to start without them"
        )
    for variable, raw in env.items():
        entry = _env_entry(raw)
        value = entry.get("value")
        if variable in settings.SET_BY_HEROKU:
            problems.append(f"{name}: env.{variable}: set by Heroku itself; do not declare it")
        elif variable == users.VARIABLE and (value is not None or "generator" in entry):
            what = "a generator" if value is None else "a value"
            problems.append(
                f"{name}: env.{variable} has {what}: app.json is public, and a default login "
                f"is one nobody chose; leave it empty ({users.FIX})"
            )
        elif isinstance(value, str) and HTPASSWD_ENTRY.search(value):
            problems.append(f"{name}: env.{variable}: its value holds an htpasswd entry; "
                            "app.json is public, keep users out of it")  # fmt: skip
    concurrency = _env_entry(env.get("WEB_CONCURRENCY")).get("value")
    if isinstance(concurrency, str) and size in settings.DYNO_MEMORY_MB:
        memory = settings.DYNO_MEMORY_MB[size]
        fits = workers_for_memory(memory)
        if not concurrency.isdigit() or int(concurrency) < 1:
            problems.append(f"{name}: env.WEB_CONCURRENCY: {concurrency!r} is not a number of "
                            "workers (1 or more)")  # fmt: skip
        elif int(concurrency) > fits:
            problems.append(
                f"{name}: env.WEB_CONCURRENCY is {concurrency}, more MLflow workers than a "
                f"{size} dyno's {memory} MB holds ({fits}): it would swap (R14) and be "
                "restarted (R15); lower it or pick a bigger heroku.dyno_size"
            )
    return problems


def _check_formation(formation: Any) -> tuple[list[str], str | None]:
    """Problems of formation.web, and its size when configgen knows its memory."""
    name = settings.APP_JSON
    web = formation.get("web") if isinstance(formation, dict) else None
    if not isinstance(web, dict) or "size" not in web:
        return [f"{name}: formation.web.size missing: Heroku would pick a dyno size, and "
                "WEB_CONCURRENCY could not be sized to its memory"], None  # fmt: skip
    size = web["size"]
    if size not in schema()["definitions"]["size"]["enum"]:
        return [], None  # the schema already said so
    if size not in settings.DYNO_MEMORY_MB:
        known = ", ".join(settings.DYNO_MEMORY_MB)
        return [f"{name}: formation.web.size {size}: configgen knows no memory for it, so "
                f"cannot size WEB_CONCURRENCY (it knows {known})"], None  # fmt: skip
    return [], size


def _plan(addon: Any) -> str:
    if isinstance(addon, dict):
        addon = addon.get("plan")
    return addon if isinstance(addon, str) else ""


def _check_addons(addons: Any) -> list[str]:
    name = settings.APP_JSON
    plans = [_plan(addon) for addon in addons] if isinstance(addons, list) else []
    problems = [
        f"{name}: addons[{i}]: {plan}: Heroku retired that plan, and a Deploy button naming "
        f"it fails; use {settings.POSTGRES}:essential-0 (heroku.postgres_plan)"
        for i, plan in enumerate(plans)
        if plan.partition(":")[2] in settings.RETIRED_PLANS
    ]
    if not any(plan.partition(":")[0] == settings.POSTGRES for plan in plans):
        problems.append(
            f"{name}: addons: no {settings.POSTGRES}: DATABASE_URL would be unset and the "
            "release phase would fail"
        )
    return problems


def check_app_json(text: str) -> list[str]:
    name = settings.APP_JSON
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        return [f"{name}: not valid JSON: {err}"]
    if not isinstance(document, dict):
        return [f"{name}: expected a JSON object"]
    problems = check_schema(document)
    if document.get("stack") != "container":
        problems.append(
            f"{name}: stack is not container: Heroku would build the app with buildpacks, "
            f"not from {settings.HEROKU_YML}'s Dockerfile"
        )
    formation_problems, size = _check_formation(document.get("formation"))
    problems += formation_problems
    problems += _check_addons(document.get("addons", []))
    env = document.get("env", {})
    if isinstance(env, dict):
        problems += _check_env(env, size)
    return problems


def _dockerfile(web: Any, root: Path) -> tuple[list[str], Path | None]:
    name = f"{settings.HEROKU_YML}: build.docker.web"
    if not isinstance(web, str) or not web:
        return [f"{name} missing: the path of the web image's Dockerfile"], None
    path = PurePosixPath(web)
    if path.is_absolute() or ".." in path.parts:
        return [f"{name}: {web} is not a path inside the repository"], None
    if not (root / path).is_file():
        return [f"{name}: {web}: no such file (run `configgen render`)"], None
    return [], root / path


def check_heroku_yml(text: str, root: Path) -> Findings:
    name = settings.HEROKU_YML
    found = Findings()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        found.problems.append(f"{name}: not valid YAML: {str(err).splitlines()[0]}")
        return found
    if not isinstance(document, dict):
        found.problems.append(f"{name}: expected a mapping with build and release")
        return found
    found.problems += [f"{name}: unknown section {key} (Heroku reads "
                       f"{', '.join(HEROKU_YML_KEYS)})"
                       for key in document if key not in HEROKU_YML_KEYS]  # fmt: skip
    if "setup" in document:
        found.warnings.append(
            f"{name}: setup is read only by `heroku apps:create --manifest`; the Deploy button "
            "and `git push` ignore it, so add-ons and config vars belong in app.json"
        )
    if "run" in document:
        found.warnings.append(
            f"{name}: run replaces the image's CMD (`mlflow-platform web`); as a shell string "
            "its PID 1 is a shell, which does not pass Heroku's SIGTERM on"
        )
    build = document.get("build")
    docker = build.get("docker") if isinstance(build, dict) else None
    images = docker if isinstance(docker, dict) else {}
    problems, path = _dockerfile(images.get("web"), root)
    found.problems += problems
    if path is not None:
        found.problems += dockerfile.check(path, str(images["web"]))
    release = document.get("release")
    if not isinstance(release, dict):
        found.problems.append(
            f"{name}: no release section: the schema migrations "
            f"(`{settings.RELEASE_COMMAND}`) would never run before new dynos start"
        )
        return found
    command = release.get("command")
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        found.problems.append(f"{name}: release.command: expected a list such as "
                              f"[{settings.RELEASE_COMMAND}]")  # fmt: skip
    image = release.get("image")
    if image not in images:
        found.problems.append(f"{name}: release.image: {image!r} is not an image build.docker "
                              "builds (web)")  # fmt: skip
    return found


def check_users(project: Project, environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The stack's users file and $MLFLOW_HTPASSWD, whichever exist, as the image checks
    them; the problems, and what was checked."""
    values = []
    if project.htpasswd.is_file():
        where = project.relative(project.htpasswd)
        values.append((where, project.htpasswd.read_text(encoding="utf-8", errors="replace")))
    if environ.get(users.VARIABLE):
        values.append((f"${users.VARIABLE}", environ[users.VARIABLE]))
    problems = []
    for where, text in values:
        try:
            users.check(text, where)
        except UsageError as err:
            problems.append(str(err))
    return problems, [where for where, _ in values]


def read(root: Path, name: str) -> str:
    path = root / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; run `configgen render`") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


def check(project: Project, environ: Mapping[str, str]) -> Findings:
    """Every problem of the project's app.json, heroku.yml and users value."""
    app_json = read(project.root, settings.APP_JSON)
    heroku_yml = read(project.root, settings.HEROKU_YML)
    found = check_heroku_yml(heroku_yml, project.root)
    found.problems[:0] = check_app_json(app_json)
    problems, checked = check_users(project, environ)
    found.problems += problems
    found.users = " and ".join(checked)
    return found
