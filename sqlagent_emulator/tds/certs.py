"""The server's TLS identity: a configured certificate, or a CA and a localhost certificate made at start.

SQL Server 2022 out of the box has a certificate (self-signed when none is provisioned) and offers
encryption to every client that supports it ([MS-TDS] 2.2.6.5). The emulator does the same: unless a
server's configuration names ``certificate`` and ``private_key`` files, it makes a small CA and a
server certificate for ``localhost`` and ``127.0.0.1`` once per process, signed by that CA, and writes
both as PEM files so that clients can trust the CA (``cafile=``) or pin the certificate
(ODBC 18 ``ServerCertificate=``).
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import ipaddress
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOSTS = ("localhost",)
ADDRESSES = ("127.0.0.1",)
_VALID_FOR = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsIdentity:
    """PEM files: the server certificate, its private key and, when the emulator made it, the CA."""

    certificate: Path
    private_key: Path
    ca: Path | None = None


def configured_identity(certificate: str, private_key: str) -> TlsIdentity:
    """The files a server's configuration names; they must exist (the TLS context loads them later)."""
    for path in (certificate, private_key):
        if not Path(path).is_file():
            raise FileNotFoundError(f"TLS file {path} does not exist")
    return TlsIdentity(Path(certificate), Path(private_key))


@functools.cache
def generated_identity() -> TlsIdentity:
    """A CA and a server certificate for localhost/127.0.0.1, made once per process in a temporary
    directory that is removed at exit. RSA 2048, as SQL Server's own self-signed certificate."""
    folder = Path(tempfile.mkdtemp(prefix="sqlagent-emulator-tls-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key = _new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sqlagent-emulator test CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = _new_key()
    # The address also as a DNS name: ODBC 18 matches SERVER=127.0.0.1 against DNS names only.
    names = [x509.DNSName(h) for h in (*HOSTS, *ADDRESSES)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    cert = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])]), ca_name, key, now)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )  # digital_signature, key_encipherment
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    identity = TlsIdentity(folder / "server.crt", folder / "server.key", folder / "ca.crt")
    identity.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    identity.private_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    identity.private_key.chmod(0o600)
    assert identity.ca is not None
    identity.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return identity


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
    )
