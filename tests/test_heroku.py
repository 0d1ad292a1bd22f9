"""Heroku: app.json and heroku.yml as rendered, their schema, and `configgen heroku check`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from configgen import render, stack, targets
from configgen.container.platform_env import workers_for_memory
from configgen.targets.heroku import check, dockerfile, settings
from tests.support import PASSWORD, REPO, clean_env, run_configgen

BCRYPT = "$2y$04$" + "a" * 53  # the shape of a bcrypt hash (cost 4), for the refusals
CONTRACT = [
    "MLFLOW_HTPASSWD", "MLFLOW_ARTIFACTS_DESTINATION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON", "MLFLOW_HOSTS", "WEB_CONCURRENCY",
]  # fmt: skip


def rendered(text: str = "") -> dict[str, str]:
    """A fresh render of a stack file given as text, in memory."""
    project = stack.Project(Path("stack/stack.yaml"), Path("."), stack.parse(text, "stack.yaml"))
    return {k: v.data.decode() for k, v in render.render(project, targets.outputs(project)).items()}


def app_json(text: str = "") -> dict:
    return json.loads(rendered(text)["app.json"])


# -- app.json -------------------------------------------------------------------------------


def test_app_json_validates_against_the_schema():
    document = app_json()
    jsonschema.Draft7Validator.check_schema(check.schema())
    jsonschema.validate(document, check.schema())
    assert check.check_app_json(rendered()["app.json"]) == []


def test_app_json():
    text = rendered()["app.json"]
    assert text.endswith("}\n") and not text.endswith("\n\n")
    document = json.loads(text)
    assert list(document) == ["name", "description", "keywords", "stack", "formation",
                              "addons", "env"]  # fmt: skip
    assert document["name"] == "mlflow"
    assert document["description"] == stack.Stack().heroku.description
    assert document["stack"] == "container"
    assert document["addons"] == [{"plan": "heroku-postgresql:essential-0"}]
    assert document["formation"] == {"web": {"quantity": 1, "size": "basic"}}
    env = document["env"]
    assert list(env) == CONTRACT  # PORT and DATABASE_URL are Heroku's
    users = env["MLFLOW_HTPASSWD"]
    assert users["required"] is True and "value" not in users and "generator" not in users
    assert "configgen htpasswd user add NAME" in users["description"]
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["required"] is True
    optional = CONTRACT[2:]
    assert all(env[name]["required"] is False for name in optional)
    assert [name for name in CONTRACT if "value" in env[name]] == ["WEB_CONCURRENCY"]
    assert env["WEB_CONCURRENCY"]["value"] == str(workers_for_memory(512)) == "1"


@pytest.mark.parametrize(
    ("size", "workers"),
    [("eco", 1), ("standard-1x", 1), ("standard-2x", 2), ("performance-m", 4),
     ("performance-l", 4)],
)  # fmt: skip
def test_web_concurrency_follows_the_dyno_size(size: str, workers: int):
    document = app_json(f"heroku: {{dyno_size: {size}, postgres_plan: standard-0}}")
    assert document["formation"]["web"]["size"] == size
    assert document["env"]["WEB_CONCURRENCY"]["value"] == str(workers)
    assert document["addons"] == [{"plan": "heroku-postgresql:standard-0"}]
    assert check.check_app_json(json.dumps(document)) == []


def test_app_json_keeps_the_description_as_written():
    text = rendered("heroku: {description: \"Team's <MLflow> & more\"}")["app.json"]
    assert json.loads(text)["description"] == "Team's <MLflow> & more"
    assert '"Team\'s <MLflow> & more"' in text  # not HTML-escaped, as Jinja's tojson would


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"stack": "cedar-14"}, "app.json: stack: does not match"),
        ({"extra": 1}, "app.json: the top level: Additional properties"),
        ({"addons": [{"as": "DB"}]}, "app.json: addons[0]: 'plan' is a required property"),
        ({"env": {"X": {"generator": "random"}}}, "app.json: env.X.generator: 'random' is not"),
        ({"env": {"X": {"value": 5}}}, "app.json: env.X.value: must be string"),
        ({"formation": {"web": {"quantity": -1}}}, "app.json: formation.web.quantity: fails"),
    ],
)
def test_the_schema_refuses(change: dict, where: str):
    document = {"name": "x", "stack": "container", **change}
    problems = check.check_schema(document)
    assert len(problems) == 1 and problems[0].startswith(where), problems


def test_schema_messages_never_repeat_a_value():
    problems = check.check_schema({"env": {"MLFLOW_HTPASSWD": {"value": ["alice:" + BCRYPT]}}})
    assert problems == ["app.json: env.MLFLOW_HTPASSWD.value: must be string"]


# -- heroku.yml -----------------------------------------------------------------------------


def test_heroku_yml():
    text = rendered()["heroku.yml"]
    assert text.startswith("# Rendered by configgen from stack/stack.yaml")
    document = yaml.safe_load(text)
    assert document == {
        "build": {"docker": {"web": "stack/platform/Dockerfile"}},
        "release": {"image": "web", "command": ["mlflow-platform release"]},
    }  # no run: the image's CMD runs as PID 1; no setup: the Deploy button ignores it


def test_committed_platform_dockerfile_copies_only_from_its_folder():
    web = yaml.safe_load((REPO / "heroku.yml").read_text())["build"]["docker"]["web"]
    path = REPO / web
    if not path.is_file():
        pytest.skip(f"{web} is not rendered yet (the platform target)")
    assert dockerfile.sources(path.read_text()), "the platform image copies its sources"
    assert dockerfile.check(path, web) == []


def test_dockerfile_sources(tmp_path: Path):
    context = tmp_path / "stack" / "platform"
    (context / "entrypoint").mkdir(parents=True)
    (context / "settings.json").write_text("{}\n")
    (context / "entrypoint" / "a.py").write_text("")
    text = (
        "# escape and comments\n"
        "FROM debian:bookworm-slim AS base\n"
        "COPY --chown=10001 entrypoint/ /opt/entrypoint/\n"
        'COPY ["settings.json", "/opt/"]\n'
        "COPY --from=base /etc/hosts /tmp/\n"  # another stage: not the context
        "ADD https://example.com/x.tar.gz /tmp/\n"
        "COPY <<EOF /opt/note\n"
        "COPY ../not-an-instruction /x\n"
        "EOF\n"
        "RUN echo \\\n"
        "  COPY ../in-a-run /x\n"
        "COPY entrypoint/*.py \\\n"
        "     settings.json /opt/\n"
        "COPY ../../configgen /opt/configgen\n"
        "COPY /settings.json missing.txt *.sh /opt/\n"
    )
    (context / "Dockerfile").write_text(text)
    found = [(s.line, s.instruction, s.path) for s in dockerfile.sources(text)]
    assert found == [
        (3, "COPY", "entrypoint/"), (4, "COPY", "settings.json"),
        (12, "COPY", "entrypoint/*.py"), (12, "COPY", "settings.json"),
        (14, "COPY", "../../configgen"),
        (15, "COPY", "/settings.json"), (15, "COPY", "missing.txt"), (15, "COPY", "*.sh"),
    ]  # fmt: skip
    shown = "stack/platform/Dockerfile"
    assert dockerfile.check(context / "Dockerfile", shown) == [
        f"{shown}: line 14: COPY ../../configgen: outside stack/platform/, the build context "
        "Heroku uses (the Dockerfile's folder); move what it copies into that folder",
        f"{shown}: line 15: COPY missing.txt: no such file in stack/platform/",
        f"{shown}: line 15: COPY *.sh: matches nothing in stack/platform/",
    ]


# -- configgen heroku check -----------------------------------------------------------------


def run(*args: str, cwd: Path, **env: str):
    return run_configgen(*args, cwd=cwd, env=clean_env(**env))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A project as `configgen new` and `init` make it, with one bcrypt user."""
    folder = tmp_path_factory.mktemp("heroku") / "proj"
    assert run("new", str(folder), cwd=folder.parent).returncode == 0
    assert run("init", cwd=folder).returncode == 0
    added = run_configgen("htpasswd", "user", "add", "alice", "--password-stdin", cwd=folder,
                          stdin=PASSWORD)  # fmt: skip
    assert added.returncode == 0, added.stderr
    platform = folder / settings.DOCKERFILE
    if not platform.is_file():
        # A stand-in until the platform target renders stack/platform/: a Dockerfile that
        # copies from its own folder, as the real one does.
        (platform.parent / "entrypoint").mkdir(parents=True)
        (platform.parent / "entrypoint" / "__init__.py").write_text("")
        platform.write_text('FROM debian:bookworm-slim\nCOPY entrypoint/ /opt/entrypoint/\n'
                            'CMD ["mlflow-platform", "web"]\n')  # fmt: skip
    return folder


@pytest.fixture
def project(made: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "proj"
    shutil.copytree(made, copy, symlinks=True)
    return copy


def heroku_check(project: Path, **env: str):
    """`configgen --stack ... heroku check`, from another folder."""
    stack_file = str(project / "stack" / "stack.yaml")
    return run("--stack", stack_file, "heroku", "check", cwd=project.parent, **env)


def edit_json(project: Path, change: Callable[[dict], None]) -> None:
    path = project / "app.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2) + "\n")


def test_check_passes_on_the_default_render(project: Path):
    done = heroku_check(project)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    assert done.stdout == (
        "proj: app.json and heroku.yml: no problems found, users in "
        "secrets/nginx/htpasswd bcrypt\n"
    )


def _env(name: str, **entry: str) -> Callable[[dict], None]:
    return lambda document: document["env"][name].update(entry)


def _size(size: str) -> Callable[[dict], None]:
    return lambda document: document["formation"]["web"].update(size=size)


def _plan(plan: str) -> Callable[[dict], None]:
    return lambda document: document["addons"][0].update(plan=plan)


def _without_release(project: Path) -> None:
    path = project / "heroku.yml"
    document = yaml.safe_load(path.read_text())
    del document["release"]
    path.write_text(yaml.safe_dump(document))


def _copy_from_outside(project: Path) -> None:
    path = project / settings.DOCKERFILE
    path.write_text(path.read_text() + "COPY ../../secrets /tmp/secrets\n")


def _users(text: str) -> Callable[[Path], None]:
    return lambda project: (project / "secrets" / "nginx" / "htpasswd").write_text(text)


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "hobby-dev plan": (
        lambda p: edit_json(p, _plan("heroku-postgresql:hobby-dev")),
        "app.json: addons[0]: heroku-postgresql:hobby-dev: Heroku retired that plan",
    ),
    "mini plan": (
        lambda p: edit_json(p, _plan("heroku-postgresql:mini")),
        "app.json: addons[0]: heroku-postgresql:mini: Heroku retired that plan",
    ),
    "no stack: container": (
        lambda p: edit_json(p, lambda d: d.pop("stack")), "app.json: stack is not container"
    ),
    "a value for MLFLOW_HTPASSWD": (
        lambda p: edit_json(p, _env("MLFLOW_HTPASSWD", value=f"alice:{BCRYPT}")),
        "app.json: env.MLFLOW_HTPASSWD has a value",
    ),
    "a generated MLFLOW_HTPASSWD": (
        lambda p: edit_json(p, _env("MLFLOW_HTPASSWD", generator="secret")),
        "app.json: env.MLFLOW_HTPASSWD has a generator",
    ),
    "an htpasswd entry in another variable": (
        lambda p: edit_json(p, _env("MLFLOW_HOSTS", value=f"bob:{BCRYPT}")),
        "app.json: env.MLFLOW_HOSTS: its value holds an htpasswd entry",
    ),
    "PORT declared": (
        lambda p: edit_json(p, lambda d: d["env"].update(PORT="8080")),
        "app.json: env.PORT: set by Heroku",
    ),
    "unknown dyno size": (
        lambda p: edit_json(p, _size("standard-3x")),
        "app.json: formation.web.size: 'standard-3x' is not one of",
    ),
    "a size configgen has no memory for": (
        lambda p: edit_json(p, _size("performance-xl")),
        "app.json: formation.web.size performance-xl: configgen knows no memory",
    ),
    "WEB_CONCURRENCY too high for the dyno": (
        lambda p: edit_json(p, _env("WEB_CONCURRENCY", value="4")),
        "app.json: env.WEB_CONCURRENCY is 4, more MLflow workers than a basic dyno's 512 MB",
    ),
    "no Postgres": (
        lambda p: edit_json(p, lambda d: d.update(addons=[])), "app.json: addons: no heroku-"
    ),
    "heroku.yml without release": (_without_release, "heroku.yml: no release section"),
    "Dockerfile COPY from outside its folder": (
        _copy_from_outside,
        "stack/platform/Dockerfile: line ",  # the line number depends on the Dockerfile
    ),
    "an apr1 users file": (
        _users("alice:$apr1$abcdefgh$0123456789abcdefghijkl\n"),
        "secrets/nginx/htpasswd: line 1: an apr1 (MD5) hash, not bcrypt",
    ),
    "a plaintext users line": (
        _users(f"alice:{BCRYPT}\nbob:correct-horse-battery\n"),
        "secrets/nginx/htpasswd: line 2: a plaintext password, not bcrypt",
    ),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_check_refuses(project: Path, broken: str):
    breaks, line = BROKEN[broken]
    breaks(project)
    done = heroku_check(project)
    assert done.returncode == 1, done.stdout + done.stderr
    problems = done.stdout.splitlines()
    assert len(problems) == 1 and problems[0].startswith(line), problems
    assert done.stderr.endswith("1 problem; Heroku would fail or misbehave with these files\n")
    output = done.stdout + done.stderr
    for secret in (BCRYPT, "$apr1$abcdefgh", "correct-horse-battery"):
        assert secret not in output  # never a hash or a password


def test_check_refuses_copy_from_outside_naming_it(project: Path):
    _copy_from_outside(project)
    problems = heroku_check(project).stdout.splitlines()
    assert len(problems) == 1
    assert problems[0].endswith(": COPY ../../secrets: outside stack/platform/, the build "
                                "context Heroku uses (the Dockerfile's folder); move what it "
                                "copies into that folder")  # fmt: skip


def test_check_reads_the_users_from_the_environment(project: Path):
    (project / "secrets" / "nginx" / "htpasswd").unlink()
    done = heroku_check(project)
    assert done.returncode == 0 and done.stdout.endswith(", no users value to check\n")
    good = heroku_check(project, MLFLOW_HTPASSWD=f"alice:{BCRYPT} bob:{BCRYPT}")
    assert good.returncode == 0 and good.stdout.endswith("users in $MLFLOW_HTPASSWD bcrypt\n")
    bad = heroku_check(project, MLFLOW_HTPASSWD="alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
    assert bad.returncode == 1
    assert bad.stdout == (
        "$MLFLOW_HTPASSWD: line 1: a {SHA} (SHA-1) hash, not bcrypt; make the entries with "
        "`configgen htpasswd user add NAME` and use that file's content\n"
    )
    assert "W6ph5Mm5" not in bad.stdout + bad.stderr


def test_check_warns_about_setup_and_run(project: Path):
    path = project / "heroku.yml"
    path.write_text(path.read_text() + "setup:\n  addons: [{plan: heroku-postgresql}]\n"
                    "run:\n  web: mlflow-platform web\n")  # fmt: skip
    done = heroku_check(project)
    assert done.returncode == 0, done.stdout
    warnings = done.stderr.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith("configgen: warning: heroku.yml: setup is read only by")
    assert warnings[1].startswith("configgen: warning: heroku.yml: run replaces the image's CMD")


@pytest.mark.parametrize("missing", ["app.json", "heroku.yml"])
def test_check_without_the_files_says_to_render(project: Path, missing: str):
    (project / missing).unlink()
    done = heroku_check(project)
    assert done.returncode == 2
    assert done.stderr == f"configgen: {project / missing}: no such file; run `configgen render`\n"
    assert done.stdout == ""


def test_check_of_a_missing_dockerfile(project: Path):
    (project / settings.DOCKERFILE).unlink()
    done = heroku_check(project)
    assert done.stdout == (
        "heroku.yml: build.docker.web: stack/platform/Dockerfile: no such file "
        "(run `configgen render`)\n"
    )
