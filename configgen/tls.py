"""HTTPS for the compose and local runners: the self-signed certificate `configgen init` makes,
and the checks a user's own certificate and key must pass before nginx is given them.

A self-signed certificate is the default because basic auth over plain HTTP shows every
password to the network; clients trust it by file (MLFLOW_TRACKING_SERVER_CERT_PATH). It names
the stack's hosts and the local names, with an ECDSA P-256 key.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from configgen import mlflow_server
from configgen.errors import UsageError
from configgen.fileio import atomic_write, make_private_dirs
from configgen.stack import Project, Stack

OFF_WARNING = (
    "tls.mode is off: passwords cross the network unencrypted; only for a stack on loopback "
    "or behind a load balancer that terminates TLS"
)
SELF_SIGNED_DAYS = 397  # what browsers accept for a server certificate's lifetime
CERT_MODE = 0o644
KEY_MODE = 0o600


# An ECDSA server key signs the TLS handshake, and nothing else.
SERVER_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip
# In the subject of every certificate configgen makes, so that it knows its own.
MADE_BY = "(self-signed by configgen)"


def names(stack: Stack) -> list[str]:
    """The names a self-signed certificate covers: the stack's hosts and the local names."""
    local = [h.strip("[]") for h in mlflow_server.LOCAL_HOSTS]
    return [*stack.hosts, *(h for h in local if h not in stack.hosts)]


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed(stack: Stack, now: datetime.datetime) -> tuple[bytes, bytes]:
    """A new key and a certificate for `names(stack)`: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, stack.hosts[0].removeprefix("*.")[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{stack.name} {MADE_BY}"),
    ])  # fmt: skip
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([_alt_name(n) for n in names(stack)]), critical=False
        )
        # A leaf that cannot sign other certificates: clients that trust it (by file, with
        # MLFLOW_TRACKING_SERVER_CERT_PATH) trust this server and nothing else, even if its
        # key leaked. OpenSSL takes a self-signed leaf as its own trust anchor.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(SERVER_KEY_USAGE, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def fingerprint(certificate: x509.Certificate) -> str:
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def ensure_self_signed(project: Project) -> str | None:
    """With `tls.mode: self-signed` and no certificate yet (or an older configgen's, which
    could sign others), make one; return a line saying so (with the fingerprint clients can
    check), or None if there was nothing to do."""
    stack = project.stack
    cert_path, key_path = project.tls_certificate, project.tls_key
    if stack.tls.mode != "self-signed":
        return None
    exists = cert_path.exists() and key_path.exists()
    if exists and not _can_sign(cert_path):
        return None
    now = datetime.datetime.now(datetime.UTC)
    cert_pem, key_pem = self_signed(stack, now)
    for path in (cert_path, key_path):
        make_private_dirs(path.parent)
    atomic_write(key_path, key_pem, KEY_MODE)
    atomic_write(cert_path, cert_pem, CERT_MODE)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    done = (
        "replaced the self-signed certificate (the old one could sign others)"
        if exists
        else "created a self-signed certificate"
    )
    return (
        f"{done} for {', '.join(names(stack))} in "
        f"{project.relative(cert_path)} (key: {project.relative(key_path)}, 0600), "
        f"valid {SELF_SIGNED_DAYS} days, fingerprint {fingerprint(certificate)}"
    )


def _can_sign(path: Path) -> bool:
    """Whether `path` is a self-signed certificate of an older configgen, which made it a CA:
    it is replaced, since a client that trusts it would trust whatever its key signs."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except (ValueError, x509.ExtensionNotFound):
        return False
    organization = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ours = any(MADE_BY in str(attribute.value) for attribute in organization)
    return ours and constraints.value.ca


def _read(path: Path, project: Project, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        hint = (
            "run `configgen init`"
            if project.stack.tls.mode == "self-signed"
            else f"set tls.{'key' if what == 'key' else 'certificate'} in the stack file"
        )
        raise UsageError(f"{project.relative(path)}: no TLS {what} ({hint})") from None
    except (PermissionError, IsADirectoryError) as err:
        raise UsageError(f"{project.relative(path)}: cannot read the TLS {what} "
                         f"({err.strerror})") from None  # fmt: skip


def _covers(pattern: str, host: str) -> bool:
    """Whether a certificate name covers `host` (a wildcard covers one label)."""
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*."):
        return host == pattern or (
            "." in host and host.split(".", 1)[1] == pattern[2:] and not host.startswith("*.")
        )
    return pattern == host


def check_own(project: Project) -> None:
    """With tls.mode files, refuse a certificate of the user's that nginx could not serve."""
    if project.stack.tls.mode == "files":
        check(project)


def check(project: Project, now: datetime.datetime | None = None) -> x509.Certificate:
    """The certificate nginx will serve, after checking that it and the key can work: both
    PEM, the key is the certificate's, it is valid now, and it names every host."""
    cert_path, key_path = project.tls_certificate, project.tls_key
    shown = project.relative(cert_path)
    try:
        certificate = x509.load_pem_x509_certificate(_read(cert_path, project, "certificate"))
    except ValueError:
        raise UsageError(f"{shown}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(_read(key_path, project, "key"), password=None)
    except (ValueError, TypeError):
        raise UsageError(
            f"{project.relative(key_path)}: not an unencrypted PEM private key "
            "(nginx cannot ask for a passphrase)"
        ) from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.PEM, public) != (
        certificate.public_key().public_bytes(serialization.Encoding.PEM, public)
    ):
        raise UsageError(f"{project.relative(key_path)}: this key does not match {shown}")
    now = now or datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc <= now:
        raise UsageError(f"{shown}: expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    if certificate.not_valid_before_utc > now:
        raise UsageError(f"{shown}: not valid before {certificate.not_valid_before_utc:%Y-%m-%d}")
    try:
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        named = [*alt.get_values_for_type(x509.DNSName),
                 *(str(a) for a in alt.get_values_for_type(x509.IPAddress))]  # fmt: skip
    except x509.ExtensionNotFound:
        named = []
    missing = [h for h in project.stack.hosts if not any(_covers(n, h) for n in named)]
    if missing:
        raise UsageError(
            f"{shown}: does not name {', '.join(missing)} (it names "
            f"{', '.join(named) or 'no host'}); clients would refuse it"
        )
    return certificate
