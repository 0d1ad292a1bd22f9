"""The stack file: defaults, validation messages, and how the file is found."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from configgen.errors import UsageError
from configgen.schema import Invalid, load
from configgen.stack import Stack, parse, read
from tests.support import REPO, clean_env, run_configgen


def test_committed_stack_file_spells_out_every_default():
    """stack/stack.yaml documents each key with the value the code uses when it is absent."""
    assert read(REPO / "stack" / "stack.yaml").stack == Stack()

    def keys(cls: type, data: dict, prefix: str = "") -> None:
        for f in dataclasses.fields(cls):
            assert f.name in data, f"stack/stack.yaml does not show {prefix}{f.name}"
            if "section" in f.metadata:
                keys(f.metadata["section"], data[f.name], f"{prefix}{f.name}.")

    keys(Stack, yaml.safe_load((REPO / "stack" / "stack.yaml").read_text()))


def test_empty_file_means_all_defaults():
    assert parse("", "s.yaml") == Stack()
    assert parse("# only a comment\n", "s.yaml") == Stack()


def test_values_are_read():
    stack = parse(
        "hosts: [mlflow.example.com, '*.ml.example.com', 10.0.0.5]\n"
        "mlflow: {workers: 4, backend_store: 'postgresql://mlflow@db:5432/mlflow',"
        " artifact_destination: 's3://my-bucket/artifacts', extra_args: ['--dev']}\n"
        "images: {database: 'registry.internal:5000/db/mysql:8.4.3',"
        " object_store: 'rustfs/rustfs@sha256:" + "a" * 64 + "'}\n",
        "s.yaml",
    )
    assert stack.hosts == ("mlflow.example.com", "*.ml.example.com", "10.0.0.5")
    assert stack.mlflow.workers == 4
    assert stack.mlflow.extra_args == ("--dev",)
    assert stack.images.database == "registry.internal:5000/db/mysql:8.4.3"


def test_mlflow_image_follows_the_mlflow_version_unless_set():
    assert parse("mlflow: {version: '3.18.0'}", "s").mlflow_image == "mlflow-stack/mlflow:3.18.0"
    custom = parse("images: {mlflow: 'corp/mlflow:7'}", "s")
    assert custom.mlflow_image == "corp/mlflow:7"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlflow: {workers: two}", "s.yaml: mlflow.workers: expected an integer >= 1, got 'two'"),
        ("mlflow: {workers: 0}", "mlflow.workers: expected an integer >= 1, got 0"),
        ("mlflow: {workers: yes}", "mlflow.workers: expected an integer >= 1, got true"),
        ("mlflow: {worker: 2}", "mlflow.worker: unknown key (did you mean 'workers'?)"),
        ("colour: blue", "colour: unknown key (known keys: name, project_dir"),
        ("proxy: {port: 0}", "proxy.port: expected an integer from 1 to 65535, got 0"),
        ("proxy: 8080", "proxy: expected a mapping of settings, got 8080"),
        ("hosts: mlflow.example.com", "hosts: expected a list of a host name"),
        ("hosts: []", "hosts: expected at least 1 of a host name"),
        ("hosts: ['https://ml.example.com']", "hosts[0]: expected a host name"),
        ("hosts: ['ml.example.com:443']", "hosts[0]: expected a host name"),
        (
            "hosts: [a.example.com, b.example.com, a.example.com]",
            "hosts[2]: 'a.example.com' is listed twice",
        ),
        ("hosts: ['300.1.1.1']", "hosts[0]: '300.1.1.1' is not a valid IPv4 address"),
        ("images: {database: mysql}", "images.database: 'mysql' has no tag"),
        ("images: {database: 'mysql:latest'}", "moving tag 'latest'"),
        ("mlflow: {version: 3.2}", 'mlflow.version: expected a version such as "3.17.2"'),
        ("mlflow: {backend_store: 'mysql://u:secret@db/mlflow'}", "holds a password"),
        ("mlflow: {backend_store: 'oracle://db/x'}", "expected 'bundled' or a database URI"),
        (
            "mlflow: {artifact_destination: 's3://Bad_Bucket/x'}",
            "'Bad_Bucket' is not a valid S3 bucket name",
        ),
        (
            "mlflow: {artifact_destination: 'ftp://x/y'}",
            "expected 'bundled' or a URI starting with s3://",
        ),
        ("mlflow: {artifact_destination: 'file://relative/path'}", "needs an absolute path"),
        ("mlflow: {extra_args: ['--gunicorn-opts', '-w 2']}", "skip its security middleware"),
        (
            "mlflow: {extra_args: ['--port=6000']}",
            "mlflow.extra_args[0]: --port is not allowed here: set mlflow.port instead",
        ),
        ("auth: {bcrypt_cost: 3}", "auth.bcrypt_cost: expected an integer from 4 to 16, got 3"),
        (
            "auth: {min_password_length: 6}",
            "auth.min_password_length: expected an integer from 8 to 72",
        ),
        ("auth: {realm: 'say \"hi\"'}", "auth.realm: expected 1-64 printable ASCII characters"),
        ("proxy: {max_body_size: 16GB}", "proxy.max_body_size: expected an nginx size"),
        ("object_store: {bucket: ab}", "object_store.bucket: expected an S3 bucket name"),
        ("name: My Stack", "name: expected a name of lowercase letters, digits and -"),
        ("- just\n- a list", "s.yaml: expected a mapping of settings, got a list"),
        (
            "mlflow:\n  workers: 2\n  workers: 3\n",
            "s.yaml: line 3, column 3: not valid YAML: key 'workers' appears twice",
        ),
        ("mlflow: {workers: 2", "s.yaml: line 1, column 20: not valid YAML: expected ','"),
    ],
)
def test_invalid_values_name_the_key_and_the_problem(text: str, message: str):
    with pytest.raises(UsageError) as raised:
        parse(text, "s.yaml")
    assert message in str(raised.value)
    assert str(raised.value).startswith("s.yaml: ")
    assert "\n" not in str(raised.value)


def test_nested_sections_report_their_full_path():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        pass

    with pytest.raises(Invalid, match=r"^outer\.x: unknown key"):
        load(Inner, {"x": 1}, "outer")


# -- finding the stack file ----------------------------------------------------------------


def test_found_from_a_subfolder(project: Path):
    (project / "deep" / "er").mkdir(parents=True)
    (project / "stack" / "stack.yaml").write_text("mlflow: {workers: nope}\n")
    done = run_configgen("render", "--check", cwd=project / "deep" / "er")
    assert done.returncode == 2
    assert done.stderr.startswith("configgen: ../../stack/stack.yaml: mlflow.workers:")


def test_stack_option_and_environment(project: Path, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere") / "my-stack.yaml"
    other.write_text("mlflow: {workers: many}\n")
    for args, env in (
        (["--stack", str(other), "render"], {}),
        (["render", "--stack", str(other)], {}),  # after the subcommand too
        (["render"], {"CONFIGGEN_STACK": str(other)}),
    ):
        done = run_configgen(*args, cwd=project, env=clean_env(**env))
        assert done.returncode == 2, args
        assert (
            done.stderr
            == f"configgen: {other}: mlflow.workers: expected an integer >= 1, got 'many'\n"
        )


def test_no_stack_file_anywhere(tmp_path: Path):
    done = run_configgen("render", cwd=tmp_path)
    assert done.returncode == 2
    assert "no stack/stack.yaml in" in done.stderr
    assert "--stack PATH" in done.stderr


def test_project_dir_anchors_relative_paths(tmp_path: Path):
    stack_file = tmp_path / "conf" / "prod.yaml"
    stack_file.parent.mkdir()
    stack_file.write_text("project_dir: ../deploy\nauth: {htpasswd: users/htpasswd}\n")
    project = read(stack_file)
    assert project.root == (tmp_path / "deploy").resolve()
    assert project.htpasswd == (tmp_path / "deploy" / "users" / "htpasswd").resolve()


def test_configgen_new_writes_the_repositorys_stack_file():
    """The scaffold's copy (package data, for `configgen new`) is this repository's file."""
    scaffold = REPO / "configgen" / "templates" / "project" / "stack.yaml"
    assert scaffold.read_bytes() == (REPO / "stack" / "stack.yaml").read_bytes()
