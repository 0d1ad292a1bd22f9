"""HTTPS: the self-signed certificate `configgen init` makes, the checks on a user's own
certificate and key, and a running stack's TLS seen by clients and by testssl.sh."""

from __future__ import annotations

import datetime
import http.client
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from configgen import stack, tls
from tests.localstack import ARTIFACTS, RunningStack, free_port
from tests.support import Configgen, clean_env, run_configgen, snapshot

NOW = datetime.datetime.now(datetime.UTC)


def write_stack(project: Path, text: str) -> None:
    (project / "stack" / "stack.yaml").write_text("auth: {bcrypt_cost: 4}\n" + text)


# -- the self-signed certificate ------------------------------------------------------------


def test_init_makes_a_self_signed_certificate_once(configgen: Configgen, project: Path):
    write_stack(project, "hosts: [mlflow.example.com, 10.1.2.3]\n")
    done = configgen("init")
    assert done.returncode == 0, done.stderr
    cert_path = project / "secrets" / "tls" / "certificate.pem"
    key_path = project / "secrets" / "tls" / "key.pem"
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert tls.fingerprint(certificate) in done.stdout
    assert "created a self-signed certificate for mlflow.example.com, 10.1.2.3, localhost" in (
        done.stdout
    )
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mlflow.example.com", "localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == [
        "10.1.2.3", "127.0.0.1", "::1"
    ]  # fmt: skip
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.signature_hash_algorithm.name == "sha256"
    assert (certificate.not_valid_after_utc - NOW).days in (396, 397)
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert key_path.parent.stat().st_mode & 0o777 == 0o700
    assert cert_path.stat().st_mode & 0o777 == 0o644
    # The project's own checks accept it.
    assert tls.check(stack.read(project / "stack" / "stack.yaml")) == certificate
    before = snapshot(project / "secrets")
    again = configgen("init")
    assert "certificate" not in again.stdout
    assert snapshot(project / "secrets") == before


def test_the_self_signed_certificate_cannot_sign_others(configgen: Configgen, project: Path):
    write_stack(project, "hosts: [mlflow.example.com]\n")
    assert configgen("init").returncode == 0
    cert_path = project / "secrets" / "tls" / "certificate.pem"
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    # An older configgen's certificate, a CA, is replaced by `init` (or `up`), once.
    old = old_ca_certificate(project)
    cert_path.write_bytes(old)
    done = configgen("init")
    assert "replaced the self-signed certificate (the old one could sign others)" in done.stdout
    assert cert_path.read_bytes() != old
    assert "certificate" not in configgen("init").stdout


def old_ca_certificate(project: Path) -> bytes:
    """A certificate as configgen made them before: self-signed, CA:TRUE."""
    key = serialization.load_pem_private_key((project / "secrets/tls/key.pem").read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlflow.example.com"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         f"mlflow {tls.MADE_BY}")])  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# -- a user's own certificate (tls.mode: files) ---------------------------------------------


def issue(folder: Path, names: list[str], days: int = 90, start: int = -1) -> tuple[Path, Path]:
    """A certificate and key in `folder`, as a user would bring them: for `names`, valid from
    `start` days from now for `days` days."""
    settings = stack.parse(f"hosts: {json.dumps(names)}\nname: own", "x")
    cert, key = tls.self_signed(settings, NOW)
    template = x509.load_pem_x509_certificate(cert)  # its names, reissued with our dates
    cert = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(template.issuer)
        .public_key(template.public_key())
        .serial_number(template.serial_number)
        .not_valid_before(NOW + datetime.timedelta(days=start))
        .not_valid_after(NOW + datetime.timedelta(days=start + days))
        .add_extension(template.extensions[0].value, critical=False)
        .sign(serialization.load_pem_private_key(key, None), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return folder / "cert.pem", folder / "key.pem"


FILES = "hosts: [mlflow.example.com, api.example.com]\ntls: {mode: files, certificate: own/cert.pem, key: own/key.pem}\n"  # noqa: E501


def test_own_certificate_is_used_when_it_can_work(configgen: Configgen, project: Path):
    write_stack(project, FILES)
    issue(project / "own", ["*.example.com"])
    done = configgen("render")
    assert done.returncode == 0, done.stderr
    compose = (project / "compose" / "production.yml").read_text()
    assert 'file: "../own/cert.pem"' in compose and 'file: "../own/key.pem"' in compose


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: issue(d, ["mlflow.example.com"]), "does not name api.example.com"),
        (lambda d: issue(d, ["*.example.com"], days=30, start=-60), "own/cert.pem: expired on"),
        (lambda d: issue(d, ["*.example.com"], days=30, start=5), "not valid before"),
        (lambda d: (issue(d, ["*.example.com"]), issue(d / "other", ["*.example.com"]),
                    shutil.copy(d / "other" / "key.pem", d / "key.pem")),
         "own/key.pem: this key does not match own/cert.pem"),
        (lambda d: (issue(d, ["*.example.com"]), (d / "cert.pem").write_text("junk")),
         "own/cert.pem: not a PEM certificate"),
        (lambda d: (issue(d, ["*.example.com"]), (d / "key.pem").unlink()),
         "own/key.pem: no TLS key"),
        (lambda d: (issue(d, ["*.sub.example.com"])), "does not name mlflow.example.com"),
    ],
)  # fmt: skip
def test_own_certificate_that_cannot_work_is_refused(
    configgen: Configgen, project: Path, prepare, message: str
):
    write_stack(project, FILES)
    prepare(project / "own")
    before = snapshot(project)
    done = configgen("render")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert snapshot(project) == before


# -- a running stack over HTTPS -------------------------------------------------------------


@pytest.fixture(scope="module")
def https_stack(tmp_path_factory) -> Iterator[tuple[RunningStack, int]]:
    project = tmp_path_factory.mktemp("tls")
    (project / "stack").mkdir()
    (project / "stack" / "stack.yaml").write_text("auth: {bcrypt_cost: 4}\n")
    env = clean_env()
    port, http_port = free_port(), free_port()
    done = run_configgen("up", "--detach", "--port", str(port), "--http-port", str(http_port),
                         cwd=project, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"MLflow is ready at https://127.0.0.1:{port}" in done.stdout
    cert = project / "secrets" / "tls" / "certificate.pem"
    assert f"export MLFLOW_TRACKING_SERVER_CERT_PATH={cert}" in done.stdout
    running = RunningStack(project, project / "data", port, "admin", "", env, cert)
    try:
        yield running, http_port
    finally:
        assert run_configgen("down", cwd=project, env=env).returncode == 0


def plain(port: int, path: str, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers={"Host": "localhost"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_http_keeps_health_and_redirects_the_rest(https_stack):
    running, http_port = https_stack
    assert plain(http_port, "/health").status == 200
    for method, path in (("GET", "/"), ("POST", "/api/2.0/mlflow/runs/create?x=1")):
        response = plain(http_port, path, method)
        assert response.status == 308
        assert response.getheader("Location") == f"https://localhost:{running.port}{path}"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_https_speaks_tls_12_and_13_only(https_stack):
    running, _ = https_stack
    status, headers, _ = running.request("/health")
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    versions = ssl.TLSVersion
    for version, works in ((versions.TLSv1_3, True), (versions.TLSv1_2, True),
                           (versions.TLSv1_1, False), (versions.TLSv1, False)):  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(running.ca)
        context.minimum_version = context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer what it may
        conn = http.client.HTTPSConnection("127.0.0.1", running.port, context=context, timeout=10)
        try:
            conn.request("GET", "/health", headers={"Host": "localhost"})
            assert works and conn.getresponse().status == 200
        except ssl.SSLError:
            assert not works, version
        finally:
            conn.close()


def test_clients_that_do_not_trust_the_certificate_are_refused(https_stack):
    running, _ = https_stack
    conn = http.client.HTTPSConnection("127.0.0.1", running.port, timeout=10,
                                       context=ssl.create_default_context())  # fmt: skip
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/health")
    conn.close()


def test_testssl_finds_no_old_protocol_and_no_weak_cipher(https_stack, tmp_path: Path):
    running, _ = https_stack
    testssl = shutil.which("testssl")
    assert testssl, "tests/run.sh installs testssl.sh"
    report = tmp_path / "testssl.json"
    done = subprocess.run(
        [testssl, "--protocols", "--std", "--quiet", "--color", "0", "--warnings", "off",
         "--jsonfile", str(report), f"127.0.0.1:{running.port}"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    findings = {f["id"]: f for f in json.loads(report.read_text())}
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(report, ARTIFACTS / "testssl.json")
    summary = {k: f["finding"] for k, f in findings.items() if k.startswith(("SSL", "TLS", "ciph"))}
    (ARTIFACTS / "testssl-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    assert done.returncode < 200, done.stdout[-2000:] + done.stderr[-2000:]
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[old]["finding"] == "not offered", (old, findings[old])
    for new in ("TLS1_2", "TLS1_3"):
        assert findings[new]["finding"].startswith("offered"), (new, findings[new])
    # testssl.sh's cipher categories; AVERAGE holds the obsolete CBC suites.
    weak = ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE")
    for key in (f"cipherlist_{name}" for name in weak):
        assert findings[key]["finding"] == "not offered", (key, findings[key])
        assert findings[key]["severity"] in ("OK", "INFO"), (key, findings[key])
    assert findings["cipherlist_STRONG"]["finding"] == "offered"
