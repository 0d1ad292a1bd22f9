"""`configgen eb check ZIP`: an offline validator for Elastic Beanstalk source bundles of the
"Docker running on 64bit Amazon Linux 2023" platform.

AWS offers none (`eb local` needs an account, cfn-lint does not read .ebextensions), and the
mistakes it catches each cost a failed deployment: a parent folder in the zip, a hook without
its executable bit or with CRLF line endings, a misspelled option, a Dockerrun file for another
platform, an Amazon Linux 1 nginx recipe, a secret zipped by accident. Each problem is one line.
"""

from __future__ import annotations

import difflib
import json
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from configgen import servicesecrets
from configgen.stack import Project
from configgen.values import SECRET_ARN

MAX_BUNDLE_BYTES = 512 * 1024 * 1024
HOOK_ROOTS = (".platform/hooks", ".platform/confighooks")
HOOK_PHASES = ("prebuild", "predeploy", "postdeploy")
EBEXTENSIONS_KEYS = {
    "option_settings", "packages", "sources", "files", "users", "groups", "commands",
    "container_commands", "services", "Resources", "Outputs",
}  # fmt: skip
DOCKERRUN_V1_KEYS = {
    "AWSEBDockerrunVersion", "Authentication", "Image", "Ports", "Volumes", "Logging",
    "Command", "Entrypoint",
}  # fmt: skip

_PROCESS = {
    "DeregistrationDelay", "HealthCheckInterval", "HealthCheckPath", "HealthCheckTimeout",
    "HealthyThresholdCount", "MatcherHTTPCode", "Port", "Protocol", "StickinessEnabled",
    "StickinessLBCookieDuration", "StickinessType", "UnhealthyThresholdCount",
}  # fmt: skip
_LISTENER = {"DefaultProcess", "ListenerEnabled", "Protocol", "Rules", "SSLCertificateArns",
             "SSLPolicy"}  # fmt: skip
# The option names of the namespaces a Docker environment with a load balancer uses, from the
# Elastic Beanstalk developer guide's "General options for all environments". None: any name
# (environment variables).
KNOWN_OPTIONS: dict[str, set[str] | None] = {
    "aws:autoscaling:asg": {"Availability Zones", "Cooldown", "Custom Availability Zones",
                            "EnableCapacityRebalancing", "MinSize", "MaxSize"},
    "aws:autoscaling:launchconfiguration": {
        "DisableIMDSv1", "EC2KeyName", "IamInstanceProfile", "ImageId", "InstanceType",
        "MonitoringInterval", "SecurityGroups", "SSHSourceRestriction", "BlockDeviceMappings",
        "RootVolumeType", "RootVolumeSize", "RootVolumeIOPS", "RootVolumeThroughput",
    },
    "aws:autoscaling:scheduledaction": {"StartTime", "EndTime", "MaxSize", "MinSize",
                                        "DesiredCapacity", "Recurrence", "Suspend"},
    "aws:autoscaling:trigger": {
        "BreachDuration", "LowerBreachScaleIncrement", "LowerThreshold", "MeasureName",
        "Period", "EvaluationPeriods", "Statistic", "Unit", "UpperBreachScaleIncrement",
        "UpperThreshold",
    },
    "aws:autoscaling:updatepolicy:rollingupdate": {
        "MaxBatchSize", "MinInstancesInService", "RollingUpdateEnabled", "RollingUpdateType",
        "PauseTime", "Timeout",
    },
    "aws:ec2:instances": {"EnableSpot", "InstanceTypes", "SpotFleetOnDemandBase",
                          "SpotFleetOnDemandAboveBasePercentage", "SpotMaxPrice",
                          "SupportedArchitectures"},
    "aws:ec2:vpc": {"VPCId", "Subnets", "ELBSubnets", "ELBScheme", "DBSubnets",
                    "AssociatePublicIpAddress"},
    "aws:elasticbeanstalk:application": {"Application Healthcheck URL"},
    "aws:elasticbeanstalk:application:environment": None,
    "aws:elasticbeanstalk:application:environmentsecrets": None,
    "aws:elasticbeanstalk:cloudwatch:logs": {"StreamLogs", "DeleteOnTerminate",
                                             "RetentionInDays"},
    "aws:elasticbeanstalk:cloudwatch:logs:health": {"HealthStreamingEnabled",
                                                    "DeleteOnTerminate", "RetentionInDays"},
    "aws:elasticbeanstalk:command": {"DeploymentPolicy", "Timeout", "BatchSizeType",
                                     "BatchSize", "IgnoreHealthCheck"},
    "aws:elasticbeanstalk:environment": {"EnvironmentType", "LoadBalancerType",
                                         "LoadBalancerIsShared", "ServiceRole"},
    "aws:elasticbeanstalk:environment:proxy": {"ProxyServer"},
    "aws:elasticbeanstalk:healthreporting:system": {"ConfigDocument",
                                                    "EnhancedHealthAuthEnabled",
                                                    "HealthCheckSuccessThreshold",
                                                    "SystemType"},
    "aws:elasticbeanstalk:hostmanager": {"LogPublicationControl"},
    "aws:elasticbeanstalk:managedactions": {"ManagedActionsEnabled", "PreferredStartTime",
                                            "ServiceRoleForManagedUpdates"},
    "aws:elasticbeanstalk:managedactions:platformupdate": {"UpdateLevel",
                                                           "InstanceRefreshEnabled"},
    "aws:elasticbeanstalk:monitoring": {"Automatically Terminate Unhealthy Instances"},
    "aws:elasticbeanstalk:sns:topics": {"Notification Endpoint", "Notification Protocol",
                                        "Notification Topic ARN", "Notification Topic Name"},
    "aws:elasticbeanstalk:xray": {"XRayEnabled"},
    "aws:elbv2:loadbalancer": {"AccessLogsS3Bucket", "AccessLogsS3Enabled",
                               "AccessLogsS3Prefix", "IdleTimeout", "ManagedSecurityGroup",
                               "SecurityGroups", "SharedLoadBalancer"},
}  # fmt: skip
# Namespaces with a name of the user's inside: a process, a listener port, a listener rule.
KNOWN_PATTERNS: dict[str, set[str]] = {
    r"aws:elasticbeanstalk:environment:process:[\w-]+": _PROCESS,
    r"aws:elbv2:listener:(default|\d{1,5})": _LISTENER,
    r"aws:elbv2:listenerrule:[\w-]+": {"HostHeaders", "PathPatterns", "Priority", "Process"},
}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/+@-]*")


def _options(namespace: str) -> set[str] | bool | None:
    """The option names of `namespace`; None for any; False if it is not a known namespace."""
    if namespace in KNOWN_OPTIONS:
        return KNOWN_OPTIONS[namespace]
    for pattern, names in KNOWN_PATTERNS.items():
        if re.fullmatch(pattern, namespace):
            return names
    return False


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {match[0]}?)" if match else ""


def _option_triples(settings: Any, where: str) -> tuple[list[tuple[str, str, Any]], list[str]]:
    """(namespace, option, value) from either form .ebextensions accepts, and the problems."""
    triples: list[tuple[str, str, Any]] = []
    if isinstance(settings, dict):
        for namespace, options in settings.items():
            if not isinstance(options, dict):
                return [], [f"{where}: option_settings.{namespace} is not a mapping of options"]
            triples += [(str(namespace), str(k), v) for k, v in options.items()]
        return triples, []
    if isinstance(settings, list):
        for i, item in enumerate(settings):
            if not isinstance(item, dict) or not {"namespace", "option_name"} <= set(item):
                return [], [f"{where}: option_settings[{i}] needs namespace and option_name"]
            triples.append((str(item["namespace"]), str(item["option_name"]), item.get("value")))
        return triples, []
    return [], [f"{where}: option_settings is neither a mapping nor a list"]


def check_options(settings: Any, where: str) -> list[str]:
    triples, problems = _option_triples(settings, where)
    namespaces = [*KNOWN_OPTIONS, "aws:elasticbeanstalk:environment:process:default",
                  "aws:elbv2:listener:default"]  # fmt: skip
    for namespace, option, value in triples:
        names = _options(namespace)
        if names is False:
            problems.append(
                f"{where}: unknown option namespace {namespace}{_suggest(namespace, namespaces)}"
            )
        elif names is None:
            if not ENV_NAME.fullmatch(option):
                problems.append(f"{where}: {namespace}: {option!r} is not a valid variable name")
            if namespace.endswith("environmentsecrets") and not (
                isinstance(value, str) and value and re.fullmatch(SECRET_ARN.pattern, value)
            ):
                problems.append(
                    f"{where}: {namespace}: {option} must be a Secrets Manager or SSM "
                    "parameter ARN, never the secret itself"
                )
        elif option not in names:
            problems.append(f"{where}: {namespace} has no option {option}{_suggest(option, names)}")
    return problems


def check_ebextension(name: str, data: bytes) -> list[str]:
    if not name.endswith(".config"):
        return [f"{name}: Elastic Beanstalk reads only .ebextensions/*.config files"]
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        return [f"{name}: not valid YAML or JSON: {str(err).splitlines()[0]}"]
    if document is None:
        return []
    if not isinstance(document, dict):
        return [f"{name}: expected a mapping of sections such as option_settings"]
    problems = [
        f"{name}: unknown section {key}{_suggest(str(key), EBEXTENSIONS_KEYS)}"
        for key in document
        if key not in EBEXTENSIONS_KEYS
    ]
    if "option_settings" in document:
        problems += check_options(document["option_settings"], name)
    files = document.get("files")
    if isinstance(files, dict) and any(str(f).startswith("/etc/nginx") for f in files):
        problems.append(
            f"{name}: writes /etc/nginx with files:, the Amazon Linux 1 way; Amazon Linux "
            "2023 replaces that folder at deployment: use .platform/nginx/ instead"
        )
    return problems


def check_dockerrun(data: bytes, dockerfile: bytes | None) -> list[str]:
    name = "Dockerrun.aws.json"
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return [f"{name}: not valid JSON: {err}"]
    if not isinstance(document, dict):
        return [f"{name}: expected a JSON object"]
    version = str(document.get("AWSEBDockerrunVersion", ""))
    if version != "1":
        what = {"2": "ECS platform", "3": "Docker Compose form"}.get(version, "missing version")
        return [f"{name}: AWSEBDockerrunVersion is {version or 'missing'} ({what}); the "
                "Docker platform without Compose reads version \"1\""]  # fmt: skip
    problems = [
        f"{name}: unknown key {key}{_suggest(key, DOCKERRUN_V1_KEYS)}"
        for key in document
        if key not in DOCKERRUN_V1_KEYS
    ]
    ports = document.get("Ports", [])
    valid_ports = isinstance(ports, list) and all(
        isinstance(p, dict) and isinstance(p.get("ContainerPort"), int)
        and 1 <= p["ContainerPort"] <= 65535 for p in ports
    )  # fmt: skip
    if not valid_ports:
        problems.append(f'{name}: Ports must be a list of {{"ContainerPort": NUMBER}}')
        ports = []
    image = document.get("Image")
    if dockerfile is None:
        if not (isinstance(image, dict) and image.get("Name")):
            problems.append(f"{name}: no Dockerfile in the bundle and no Image.Name to run")
        if not ports:
            problems.append(f"{name}: Ports is required with an Image")
    elif ports:
        exposed = re.findall(rb"^\s*EXPOSE\s+(\d+)", dockerfile, re.MULTILINE | re.IGNORECASE)
        first = ports[0]["ContainerPort"]
        if exposed and int(exposed[0]) != first:
            problems.append(
                f"{name}: the first ContainerPort ({first}) is not the Dockerfile's first "
                f"EXPOSE ({int(exposed[0])}); Elastic Beanstalk proxies to the first port only"
            )
    logging = document.get("Logging")
    if logging is not None and not (isinstance(logging, str) and logging.startswith("/")):
        problems.append(f"{name}: Logging must be an absolute folder inside the container")
    return problems


def check_hook(name: str, mode: int, data: bytes) -> list[str]:
    parts = PurePosixPath(name).parts
    root = "/".join(parts[:2])
    if len(parts) != 4 or parts[2] not in HOOK_PHASES:
        phases = ", ".join(HOOK_PHASES)
        return [f"{name}: hooks live in {root}/PHASE/ with PHASE one of {phases}"]
    problems = []
    if not mode & 0o111:
        problems.append(
            f"{name}: not executable (mode {mode & 0o777:o}); zip it with its mode kept "
            "(chmod +x, then zip on Linux or macOS)"
        )
    if not data.startswith(b"#!"):
        problems.append(f"{name}: does not start with #! (the interpreter to run it with)")
    if b"\r\n" in data:
        problems.append(f"{name}: has Windows (CRLF) line endings; the hook fails on Linux")
    return problems


def check_server_snippet(name: str, data: bytes) -> list[str]:
    """conf.d/elasticbeanstalk/ is included inside EB's server, which has `location /`."""
    text = data.decode("utf-8", "replace")
    if re.search(r"^\s*location\s+/\s*\{", text, re.MULTILINE):
        return [f"{name}: defines `location /`, which Elastic Beanstalk's server already has "
                "(nginx -t fails and the deployment with it)"]  # fmt: skip
    return []


def _mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0o7777


def check_layout(names: list[str]) -> list[str]:
    problems = []
    files = [n for n in names if not n.endswith("/")]
    for name in files:
        if name.startswith("/") or ".." in PurePosixPath(name).parts or "\\" in name:
            problems.append(f"{name}: not a relative path with / separators")
    roots = {n.split("/", 1)[0] for n in files if "/" in n}
    at_root = {n for n in files if "/" not in n}
    if not at_root & {"Dockerfile", "Dockerrun.aws.json"}:
        if len(roots) == 1 and not at_root:
            parent = next(iter(roots))
            problems.append(
                f"everything is inside a parent folder {parent}/: zip the folder's contents, "
                f"not the folder (cd {parent} && zip -r ../bundle.zip . )"
            )
        else:
            problems.append("no Dockerfile or Dockerrun.aws.json at the zip's root")
    compose = at_root & {"docker-compose.yml", "docker-compose.yaml", "compose.yml"}
    if compose and "Dockerrun.aws.json" in at_root:
        problems.append(
            f"{sorted(compose)[0]} beside Dockerrun.aws.json: Elastic Beanstalk then runs "
            "Docker Compose, without its nginx and this bundle's .platform/nginx"
        )
    return problems


def known_secrets(project: Project) -> list[tuple[str, str]]:
    """(where it comes from, value) of every secret the stack generated: the service secrets
    and the users' password hashes."""
    found = []
    for secret in servicesecrets.SECRETS:
        path = project.secrets_dir / secret.file
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if len(value) >= 8:
            found.append((project.relative(path), value))
    try:
        lines = project.htpasswd.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, _, digest = line.partition(":")
        if digest:
            found.append((f"{project.relative(project.htpasswd)} ({name})", digest.strip()))
    return found


def check(path: Path, secrets: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Every problem of the bundle at `path`, one line each; none if it looks deployable."""
    size = path.stat().st_size
    problems = []
    if size > MAX_BUNDLE_BYTES:
        problems.append(f"{size / 2**20:.0f} MB: Elastic Beanstalk takes bundles up to 512 MB")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return [f"{path}: not a zip file"]
    with archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        problems += check_layout(names)
        contents = {i.filename: archive.read(i) for i in infos if not i.is_dir()}
    dockerfile = contents.get("Dockerfile")
    if "Dockerrun.aws.json" in contents:
        problems += check_dockerrun(contents["Dockerrun.aws.json"], dockerfile)
    modes = {i.filename: _mode(i) for i in infos}
    for name, data in contents.items():
        if name.startswith(".ebextensions/"):
            problems += check_ebextension(name, data)
        elif name.startswith(tuple(f"{root}/" for root in HOOK_ROOTS)):
            problems += check_hook(name, modes[name], data)
        elif name.startswith(".platform/nginx/conf.d/elasticbeanstalk/"):
            problems += check_server_snippet(name, data)
        for where, value in secrets:
            if value.encode() in data:
                problems.append(f"{name}: holds the secret of {where}")
    return problems
