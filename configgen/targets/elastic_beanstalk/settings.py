"""Elastic Beanstalk ("Docker running on 64bit Amazon Linux 2023"): what the bundle's files
are filled with, and when `configgen eb bundle` refuses to make one.

The bundle extends EB's own host nginx instead of replacing it: http-level files go to
`.platform/nginx/conf.d/`, the MLflow locations every runner shares go inside EB's server
through `conf.d/elasticbeanstalk/`, and the two fragments those include sit at the root of
`.platform/nginx/` (EB copies the folder over /etc/nginx). A predeploy hook writes the users
file from an environment secret. MLflow runs in the container built from the bundle's
Dockerfile: the compose stack's image.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from configgen import mlflow_server, nginx, tls
from configgen.stack import Project, Stack

# The users file's content reaches the instances in this environment variable.
HTPASSWD_VARIABLE = "MLFLOW_HTPASSWD"
NGINX_DIR = "/etc/nginx"
NGINX_GROUP = "nginx"  # the workers' user and group in EB's nginx.conf
# EB's upstream for the container's first port (conf.d/elasticbeanstalk-nginx-docker-upstream.conf).
EB_UPSTREAM = "docker"
# The verifier listens here: loopback only, and no socket file that a killed nginx leaves
# behind to block its own restart.
VERIFIER_ADDRESS = "127.0.0.1:8079"
# Without elastic_beanstalk.cname, MLflow accepts any Elastic Beanstalk CNAME. AWS points each
# of those names at its own environment only, so none can rebind to this one.
EB_HOSTS = "*.elasticbeanstalk.com"
# The load balancer's HTTPS policy: TLS 1.3 and 1.2 only.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
MAX_IDLE_TIMEOUT = 3600  # what Elastic Beanstalk accepts for aws:elbv2:loadbalancer IdleTimeout

HOOK_NAME = "10_mlflow_users.sh"
HOOK_PHASES = {
    ".platform/hooks/predeploy": "predeploy (application deployments)",
    ".platform/confighooks/predeploy": "predeploy (configuration deployments)",
}
NGINX_FILES = {
    # the shared fragment: where it goes in the bundle
    "mlflow-http.conf": ".platform/nginx/conf.d/mlflow-http.conf",
    "mlflow-server.conf": ".platform/nginx/conf.d/elasticbeanstalk/mlflow-server.conf",
    "mlflow-health.conf": ".platform/nginx/mlflow-health.conf",
    "mlflow-proxy.conf": ".platform/nginx/mlflow-proxy.conf",
    "mlflow-verifier.conf": ".platform/nginx/mlflow-verifier.conf",
}
# After mlflow-http.conf in the alphabetical order EB includes conf.d/*.conf in: it uses the
# log format that one defines.
EB_NGINX_FILE = ".platform/nginx/conf.d/mlflow-runner.conf"
DOCKERRUN = "Dockerrun.aws.json"
OPTIONS_FILE = ".ebextensions/mlflow.config"



def runtime(stack: Stack) -> nginx.Runtime:
    """EB's host nginx, as far as the shared files and the http-level file need it. The load
    balancer terminates TLS; with a certificate its plain-HTTP requests are redirected."""
    return nginx.Runtime(
        purpose="Elastic Beanstalk's host nginx",
        verifier_purpose="the password checks in Elastic Beanstalk's host nginx",
        listen="80",
        upstream=EB_UPSTREAM,
        pid="/var/run/nginx.pid",
        error_log="/var/log/nginx/error.log",
        access_log="/var/log/nginx/access.log",
        auth_listen=VERIFIER_ADDRESS,
        verifier_pid="/var/run/nginx.pid",  # the same nginx: there is no second one here
        # /run is a tmpfs on Amazon Linux 2023; the cache holds credentials.
        auth_cache_dir="/run/nginx-mlflow-auth",
        # EB's log bundles and streaming take /var/log/nginx/*.
        auth_log="/var/log/nginx/mlflow-auth.log",
        user=NGINX_GROUP,
        behind_load_balancer=True,
        redirect_http=bool(stack.elastic_beanstalk.https_certificate),
    )


def environment(stack: Stack) -> dict[str, str]:
    """Environment properties: the MLflow container's settings that are not secret."""
    eb = stack.elastic_beanstalk
    cname = (eb.cname,) if eb.cname else ()
    env = {
        "MLFLOW_PORT": str(stack.mlflow.port),
        "MLFLOW_WORKERS": str(stack.mlflow.workers),
        "MLFLOW_SERVER_ALLOWED_HOSTS": ",".join(
            mlflow_server.allowed_hosts(stack, cname or (EB_HOSTS,))
        ),
        # Without a CNAME the UI's page may be any *.elasticbeanstalk.com name; nginx still
        # lets only the page's own name in ($mlflow_foreign_origin), never another environment's.
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": ",".join(
            mlflow_server.cors_origins(stack, cname or (EB_HOSTS,))
        ),
        **mlflow_server.server_environment(stack),
    }
    if not stack.mlflow.bundled_backend and not eb.secrets.backend_store_uri:
        env["MLFLOW_BACKEND_URI"] = stack.mlflow.backend_store
    artifacts = stack.mlflow.artifact_destination
    if not stack.mlflow.bundled_artifacts:
        env["MLFLOW_ARTIFACTS_DESTINATION"] = artifacts
    if urlsplit(artifacts).scheme == "s3":
        env["AWS_DEFAULT_REGION"] = stack.object_store.region
        if stack.object_store.endpoint:
            env["MLFLOW_S3_ENDPOINT_URL"] = stack.object_store.endpoint
    return env


def environment_secrets(stack: Stack) -> dict[str, str]:
    """Environment variable name: the ARN Elastic Beanstalk fetches its value from."""
    arns = stack.elastic_beanstalk.secrets
    named = {
        HTPASSWD_VARIABLE: arns.htpasswd,
        "MLFLOW_BACKEND_URI": arns.backend_store_uri,
        "MLFLOW_DB_PASSWORD": arns.database_password,
    }
    return {name: arn for name, arn in named.items() if arn}


def health_config() -> str:
    """Enhanced health's rules: 4xx answers (a wrong password) do not degrade an instance."""
    rules = {
        "Application": {"ApplicationRequests4xx": {"Enabled": False}},
        "ELB": {"ELBRequests4xx": {"Enabled": False}},
    }
    return json.dumps({"Rules": {"Environment": rules}, "Version": 1}, separators=(",", ":"))


def options_context(stack: Stack) -> dict[str, object]:
    eb = stack.elastic_beanstalk
    return {
        "eb": eb,
        "instance_types": ",".join(eb.instance_types),
        "idle_timeout": min(stack.proxy.timeout_seconds, MAX_IDLE_TIMEOUT),
        "ssl_policy": SSL_POLICY,
        "health_config": health_config(),
        "environment": environment(stack),
        "secrets": environment_secrets(stack),
    }


def dockerrun(stack: Stack) -> dict[str, object]:
    """Dockerrun.aws.json v1 beside a Dockerfile: EB builds the image and proxies to the first
    container port. (MLflow logs to standard output, which EB already collects.)"""
    return {"AWSEBDockerrunVersion": "1", "Ports": [{"ContainerPort": stack.mlflow.port}]}


def hook_context(stack: Stack, phase: str) -> dict[str, object]:
    return {
        "phase": phase,
        "variable": HTPASSWD_VARIABLE,
        "nginx_dir": NGINX_DIR,
        "nginx_group": NGINX_GROUP,
        "secrets_folder": nginx.SECRETS_FOLDER,
        "htpasswd_name": PurePosixPath(stack.auth.htpasswd).name,
        "generation_suffix": nginx.GENERATION_SUFFIX,
    }


def _per_instance_backend(stack: Stack) -> str | None:
    """Why the metadata would live inside each instance, or None if it is shared."""
    if stack.elastic_beanstalk.secrets.backend_store_uri:
        return None
    backend = stack.mlflow.backend_store
    if stack.mlflow.bundled_backend:
        return "mlflow.backend_store is `bundled`: SQLite inside each instance's container"
    if urlsplit(backend).scheme == "sqlite":
        return f"mlflow.backend_store is SQLite ({backend}), a file on each instance"
    return None


def _per_instance_artifacts(stack: Stack) -> str | None:
    destination = stack.mlflow.artifact_destination
    if stack.mlflow.bundled_artifacts:
        return "mlflow.artifact_destination is `bundled`: a folder inside each container"
    if urlsplit(destination).scheme != "s3":
        return f"mlflow.artifact_destination is {destination}, not S3"
    return None


def refusals(project: Project, users: list[tuple[str, str]]) -> list[str]:
    """Why a bundle of this stack must not be deployed: one line each; none if it may.
    `users` are the htpasswd file's names with their hash schemes."""
    stack = project.stack
    eb = stack.elastic_beanstalk
    problems = []
    if eb.min_instances > eb.max_instances:
        problems.append(
            f"elastic_beanstalk.min_instances ({eb.min_instances}) is above "
            f"max_instances ({eb.max_instances})"
        )
    if eb.max_instances > 1:
        if why := _per_instance_backend(stack):
            problems.append(
                f"elastic_beanstalk.max_instances is {eb.max_instances} but {why}: every "
                "instance would keep runs of its own. Set mlflow.backend_store to an external "
                "database (RDS), e.g. mysql+pymysql://mlflow@HOST:3306/mlflow"
            )
        if why := _per_instance_artifacts(stack):
            problems.append(
                f"elastic_beanstalk.max_instances is {eb.max_instances} but {why}: instances "
                "share artifacts through S3 only. Set mlflow.artifact_destination to "
                "s3://BUCKET/PATH"
            )
    if not eb.https_certificate and stack.tls.enabled:
        problems.append(
            "elastic_beanstalk.https_certificate is empty: the load balancer would take "
            "passwords over plain HTTP. Set it to an ACM certificate ARN, or set tls.mode: off "
            "to deploy plain HTTP on purpose"
        )
    users_file = project.relative(project.htpasswd)
    if not users:
        problems.append(
            f"{users_file} has no users, so nobody could log in: "
            "add one with `configgen htpasswd user add NAME`"
        )
    for name, scheme in users:
        if scheme != "bcrypt":
            problems.append(
                f"{users_file}: {name} is stored as {scheme}, which the bundle's hook refuses; "
                f"reset it with `configgen htpasswd user passwd {name}`"
            )
    return problems


def warnings(project: Project) -> list[str]:
    """What a bundle of this stack may deploy but the user should know."""
    stack = project.stack
    notes = []
    if not stack.elastic_beanstalk.https_certificate:
        notes.append(tls.OFF_WARNING)  # refusals() lets this through only with tls.mode: off
    if _per_instance_backend(stack) or stack.mlflow.bundled_artifacts:
        notes.append(
            "the metadata or artifacts stay inside the instance and are lost when Elastic "
            "Beanstalk replaces it or redeploys: fine for a trial, not for a team"
        )
    if not stack.proxy.trusted_proxies:
        notes.append(
            "proxy.trusted_proxies is empty: behind the load balancer all clients share its "
            "addresses in the password-check limits; set it to your VPC's CIDR, e.g. "
            "[172.31.0.0/16]"
        )
    if not stack.elastic_beanstalk.secrets.htpasswd:
        notes.append(
            f"elastic_beanstalk.secrets.htpasswd is empty: set the {HTPASSWD_VARIABLE} "
            f"environment property yourself (eb setenv {HTPASSWD_VARIABLE}=$(base64 -w0 "
            f"{project.relative(project.htpasswd)})) or deployments fail"
        )
    return notes
