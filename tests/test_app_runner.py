"""The AWS App Runner CloudFormation template (stack/app-runner.yaml): linted, scanned, and
read back as CloudFormation to check what it grants, where its secrets come from and how its
network reaches S3. That the committed file is a fresh render: tests/test_render.py."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from configgen import render, stack
from configgen.errors import UsageError
from configgen.targets.app_runner import files, settings
from tests import cfn_tools
from tests.support import PASSWORD, run_configgen

S3_STACK = "mlflow:\n  artifact_destination: s3://team-artifacts/mlflow/runs\n"
TEMPLATE = settings.TEMPLATE_FILE


def rendered_text(text: str = "") -> str:
    """The template for a stack file given as text, rendered in memory."""
    project = stack.Project(Path("stack/stack.yaml"), Path("."), stack.parse(text, "stack.yaml"))
    return render.render(project, files.outputs(project))[TEMPLATE].data.decode()


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !If...) as their long forms."""


def _short_form(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_form)


def template(text: str = "") -> dict[str, Any]:
    return yaml.load(rendered_text(text), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader


def resources(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in doc["Resources"].items() if r["Type"] == kind}


def branches(items: list[Any]) -> Iterator[dict[str, Any]]:
    """List items, with an `!If [condition, item, AWS::NoValue]` item as its item."""
    for item in items:
        if "Fn::If" in item:
            yield from (b for b in item["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"})
        else:
            yield item


def image_config(doc: dict[str, Any]) -> dict[str, Any]:
    service = doc["Resources"]["Service"]["Properties"]
    return service["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]


def role_statements(doc: dict[str, Any], role: str = "InstanceRole") -> list[dict[str, Any]]:
    policies = doc["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in branches(p["PolicyDocument"]["Statement"])]


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="session")
def tools() -> Path:
    return cfn_tools.ensure()


@pytest.fixture
def templates(tmp_path: Path) -> list[Path]:
    """The committed template (artifacts as Parameters) and one with an S3 bucket."""
    s3 = tmp_path / "app-runner-s3.yaml"
    s3.write_text(rendered_text(S3_STACK))
    return [Path(TEMPLATE).resolve(), s3]


# -- the offline checkers ---------------------------------------------------------------------


@pytest.mark.slow  # the first run installs the tools
def test_cfn_lint_passes(tools: Path, templates: list[Path]):
    done = subprocess.run(
        [str(tools / "cfn-lint"), *map(str, templates)], capture_output=True, text=True
    )
    assert done.returncode == 0, cfn_tools.version(tools, "cfn-lint") + "\n" + done.stdout


@pytest.mark.slow  # the first run installs the tools
def test_checkov_passes(tools: Path, templates: list[Path]):
    done = subprocess.run(
        [str(tools / "checkov"), *(a for t in templates for a in ("-f", str(t))),
         "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    reports = json.loads(done.stdout)
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report["summary"]
        failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
        assert summary["failed"] == 0 and not failed, failed
        assert summary["parsing_errors"] == 0
        assert summary["resource_count"] >= 10 and summary["passed"] >= 30, summary
    assert done.returncode == 0, done.stderr[-2000:]


# -- no secrets --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as a user makes one: `configgen new`, `init`, a user; rendered."""
    home = tmp_path_factory.mktemp("home")
    for args, cwd, stdin in (
        (["new", "proj"], home, None),
        (["init"], home / "proj", None),
        (["htpasswd", "user", "add", "alice", "--password-stdin"], home / "proj", PASSWORD),
        (["render"], home / "proj", None),
    ):
        done = run_configgen(*args, cwd=cwd, stdin=stdin)
        assert done.returncode == 0, (args, done.stderr)
    return home / "proj"


def secret_values(folder: Path) -> list[str]:
    """Every value in the secrets folder: each file whole and each of its lines (a PEM key's,
    a users file's), and each hash of the users file."""
    values = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text()
        lines = [line.strip() for line in text.splitlines()]
        hashes = [line.split(":", 1)[1] for line in lines if ":" in line and "$2" in line]
        values += [text.strip(), *lines, *hashes]
    return [v for v in values if len(v) >= 8 and not v.startswith("-----")]


def test_no_secret_value_is_in_the_template(made_project: Path):
    text = (made_project / TEMPLATE).read_text()
    assert text == Path(TEMPLATE).read_text()  # the repository ships the same template
    values = secret_values(made_project / "secrets")
    users = (made_project / "secrets" / "nginx" / "htpasswd").read_text()
    assert users.startswith("alice:$2") and len(values) > 20  # the scan has something to find
    for value in [*values, PASSWORD]:
        assert value not in text, f"a secret value from {made_project}/secrets is in {TEMPLATE}"
    assert not re.search(r"\$2[aby]?\$[0-9]{2}\$", text), "a bcrypt hash is in the template"


def test_secrets_reach_the_container_only_as_secret_references():
    doc = template(S3_STACK)
    config = image_config(doc)
    secrets = {s["Name"]: s["Value"] for s in config["RuntimeEnvironmentSecrets"]}
    assert secrets == {
        "MLFLOW_HTPASSWD": {"Ref": "UsersSecretArn"},
        "DATABASE_URL": {
            "Fn::If": ["CreateDatabase", {"Ref": "DatabaseUrl"},
                       {"Ref": "ExistingDatabaseSecretArn"}],
        },
    }  # fmt: skip
    plain = {v["Name"]: v["Value"] for v in branches(config["RuntimeEnvironmentVariables"])}
    assert set(plain) == {"MLFLOW_ARTIFACTS_DESTINATION", "AWS_DEFAULT_REGION", "MLFLOW_HOSTS"}
    assert plain["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://team-artifacts/mlflow/runs"
    # PORT is App Runner's to set, from ImageConfiguration.Port.
    assert config["Port"] == "8080" and "PORT" not in plain
    assert resources(doc, "AWS::SecretsManager::Secret").keys() == {"DatabasePassword",
                                                                    "DatabaseUrl"}  # fmt: skip
    assert doc["Parameters"]["UsersSecretArn"]["Type"] == "String"
    assert "Default" not in doc["Parameters"]["UsersSecretArn"]


def test_the_database_url_secret_is_a_url_built_from_the_generated_password():
    doc = template()
    password = doc["Resources"]["DatabasePassword"]["Properties"]
    assert password["GenerateSecretString"]["ExcludePunctuation"] is True  # no URL escaping
    url = doc["Resources"]["DatabaseUrl"]["Properties"]["SecretString"]["Fn::Sub"]
    assert url == (
        "postgresql://mlflow:{{resolve:secretsmanager:${DatabasePassword}:SecretString:password}}"
        "@${DatabaseCluster.Endpoint.Address}:${DatabaseCluster.Endpoint.Port}/mlflow"
        "?sslmode=require"
    )
    cluster = doc["Resources"]["DatabaseCluster"]["Properties"]
    assert cluster["MasterUserPassword"]["Fn::Sub"] == (
        "{{resolve:secretsmanager:${DatabasePassword}:SecretString:password}}"
    )
    assert "ManageMasterUserPassword" not in cluster  # RDS would rotate away from the URL


# -- what the instance may do ------------------------------------------------------------------


def test_instance_role_s3_statements_name_only_the_bucket_and_prefix():
    statements = [s for s in role_statements(template(S3_STACK)) if "s3:" in str(s["Action"])]
    assert len(statements) == 2
    listing, objects = statements
    assert actions(listing) == ["s3:ListBucket"]
    assert listing["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::team-artifacts"}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["mlflow/runs", "mlflow/runs/*"]}}
    assert objects["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::team-artifacts/mlflow/runs/*"
    }
    assert all(a.startswith("s3:") and "*" not in a for a in actions(objects))


def test_instance_role_reads_exactly_the_two_secrets():
    doc = template()
    statements = role_statements(doc)
    reads = [s for s in statements if any(a.startswith("secretsmanager:") for a in actions(s))]
    assert len(reads) == 1 and actions(reads[0]) == ["secretsmanager:GetSecretValue"]
    named = [s["Value"] for s in image_config(doc)["RuntimeEnvironmentSecrets"]]
    assert reads[0]["Resource"] == named
    # The key of the secrets this stack makes, and only through Secrets Manager.
    kms = [s for s in statements if any(a.startswith("kms:") for a in actions(s))]
    assert [actions(s) for s in kms] == [["kms:Decrypt"]]
    assert kms[0]["Resource"] == {"Fn::GetAtt": ["DatabaseKey", "Arn"]}
    assert "kms:ViaService" in kms[0]["Condition"]["StringEquals"]
    every = {a for s in statements for a in actions(s)}
    assert every <= {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                     "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                     "secretsmanager:GetSecretValue", "kms:Decrypt"}  # fmt: skip


@pytest.mark.parametrize(
    "stack_text",
    [
        "",  # bundled
        "mlflow: {artifact_destination: 'gs://gcs-bucket-x/mlflow'}\n",
        "mlflow: {artifact_destination: 'file:///srv/mlflow'}\n",
        "mlflow: {artifact_destination: 's3://minio-bucket-x/mlflow'}\n"
        "object_store: {endpoint: 'http://minio.internal:9000'}\n",
        "mlflow: {artifact_destination: 's3://prefix-bucket-x/a*b'}\n",
    ],
)
def test_a_destination_not_on_aws_s3_yields_parameters_not_a_wrong_bucket(stack_text: str):
    text = rendered_text(stack_text)
    doc = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader
    assert doc["Parameters"]["ArtifactBucket"]["Type"] == "String"
    assert doc["Parameters"]["ArtifactPrefix"]["Type"] == "String"
    assert "bucket-x" not in text and "/srv/mlflow" not in text
    resources_named = {str(s["Resource"]) for s in role_statements(doc) if "s3:" in str(s)}
    assert resources_named == {
        str({"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArtifactBucket}"}),
        str({"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/*"}),
    }
    variables = image_config(doc)["RuntimeEnvironmentVariables"]
    env = {v["Name"]: v["Value"] for v in branches(variables)}
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == {
        "Fn::Sub": "s3://${ArtifactBucket}/${ArtifactPrefix}"
    }


def test_an_s3_destination_asks_for_no_bucket():
    assert "ArtifactBucket" not in template(S3_STACK)["Parameters"]
    assert "ArtifactBucket" not in rendered_text(S3_STACK)


# -- the network, the service ------------------------------------------------------------------


def test_every_route_table_parameter_gets_the_s3_endpoint():
    doc = template()
    endpoints = resources(doc, "AWS::EC2::VPCEndpoint")
    assert list(endpoints) == ["S3Endpoint"]
    endpoint = endpoints["S3Endpoint"]["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}
    # The whole list: not one !Select of it, as the seed project had.
    tables = [name for name in doc["Parameters"] if "RouteTable" in name]
    assert tables == ["RouteTableIds"]
    assert doc["Parameters"]["RouteTableIds"]["Type"] == "CommaDelimitedList"
    assert endpoint["RouteTableIds"] == {"Ref": "RouteTableIds"}
    connector = resources(doc, "AWS::AppRunner::VpcConnector")["VpcConnector"]["Properties"]
    assert connector["Subnets"] == {"Ref": "SubnetIds"}
    service = doc["Resources"]["Service"]
    assert service["DependsOn"] == "S3Endpoint"
    egress = service["Properties"]["NetworkConfiguration"]["EgressConfiguration"]
    assert egress == {
        "EgressType": "VPC",
        "VpcConnectorArn": {"Fn::GetAtt": ["VpcConnector", "VpcConnectorArn"]},
    }


def test_health_check_is_http_on_health():
    health = template()["Resources"]["Service"]["Properties"]["HealthCheckConfiguration"]
    assert health["Protocol"] == "HTTP"
    assert health["Path"] == "/health"


def test_instance_size_and_scaling_come_from_the_stack_file():
    doc = template("app_runner: {cpu: 2 vCPU, memory: 4 GB, min_instances: 2, max_instances: 5}\n")
    instance = doc["Resources"]["Service"]["Properties"]["InstanceConfiguration"]
    assert (instance["Cpu"], instance["Memory"]) == ("2 vCPU", "4 GB")
    scaling = resources(doc, "AWS::AppRunner::AutoScalingConfiguration")["AutoScaling"]
    assert (scaling["Properties"]["MinSize"], scaling["Properties"]["MaxSize"]) == (2, 5)
    arn = doc["Resources"]["Service"]["Properties"]["AutoScalingConfigurationArn"]
    assert arn == {"Fn::GetAtt": ["AutoScaling", "AutoScalingConfigurationArn"]}


def test_min_instances_above_max_is_refused():
    with pytest.raises(UsageError, match=r"^stack.yaml: app_runner.min_instances: 3 is above"):
        stack.parse("app_runner: {min_instances: 3, max_instances: 2}\n", "stack.yaml")


def test_database_is_aurora_serverless_v2_unless_a_secret_is_given():
    doc = template()
    assert doc["Conditions"]["CreateDatabase"] == {
        "Fn::Equals": [{"Ref": "ExistingDatabaseSecretArn"}, ""]
    }
    assert doc["Parameters"]["ExistingDatabaseSecretArn"]["Default"] == ""
    database = {n: r for n, r in doc["Resources"].items() if n.startswith("Database")}
    assert len(database) == 8
    assert all(r.get("Condition") == "CreateDatabase" for r in database.values())
    cluster = database["DatabaseCluster"]
    assert cluster["DeletionPolicy"] == "Snapshot"
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert set(props["ServerlessV2ScalingConfiguration"]) == {"MinCapacity", "MaxCapacity"}
    assert props["StorageEncrypted"] is True and props["DeletionProtection"] is True
    assert "EngineMode" not in props  # serverless (v1) reached its end of life
    instance = database["DatabaseInstance"]["Properties"]
    assert instance["DBInstanceClass"] == "db.serverless"
    assert instance["PubliclyAccessible"] is False
    ingress = database["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [rule["SourceSecurityGroupId"] for rule in ingress] == [
        {"Ref": "ConnectorSecurityGroup"}
    ]
