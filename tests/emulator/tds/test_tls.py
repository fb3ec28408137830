"""Encryption negotiation ([MS-TDS] 2.2.6.5) and the emulator's TLS identity, without a client."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509

from sqlagent_emulator.config import ConfigError, parse_server
from sqlagent_emulator.tds.certs import generated_identity
from sqlagent_emulator.tds.login import build_prelogin_reply, parse_prelogin
from sqlagent_emulator.tds.tls import Encryption, Scope, ServerTls, negotiate_encryption

OFF, ON, NOT_SUP, REQ = Encryption.OFF, Encryption.ON, Encryption.NOT_SUP, Encryption.REQ


@pytest.mark.parametrize(
    ("client", "mode", "answer", "scope"),
    [
        # server with a certificate, not forcing (2.2.6.5: server ENCRYPT_OFF column)
        (OFF, "optional", OFF, Scope.LOGIN),
        (ON, "optional", ON, Scope.SESSION),
        (NOT_SUP, "optional", NOT_SUP, Scope.NONE),
        (REQ, "optional", ON, Scope.SESSION),
        # server forcing encryption (server ENCRYPT_ON column)
        (OFF, "required", REQ, Scope.SESSION),
        (ON, "required", ON, Scope.SESSION),
        (NOT_SUP, "required", REQ, Scope.REFUSED),
        (REQ, "required", ON, Scope.SESSION),
        (0x81, "required", ON, Scope.SESSION),  # ENCRYPT_CLIENT_CERT bit: certificate login is not offered
    ],
)
def test_negotiation_follows_the_ms_tds_table(client: int, mode: str, answer: Encryption, scope: Scope) -> None:
    assert negotiate_encryption(client, mode) == (answer, scope)  # type: ignore[arg-type]


def test_prelogin_reply_carries_the_answer() -> None:
    assert parse_prelogin(build_prelogin_reply((16, 0, 1000), Encryption.REQ))[0x01] == b"\x03"


def test_generated_certificate_names_localhost_and_is_signed_by_its_ca() -> None:
    identity = generated_identity()
    assert identity.ca is not None
    cert = x509.load_pem_x509_certificate(identity.certificate.read_bytes())
    ca = x509.load_pem_x509_certificate(identity.ca.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    cert.verify_directly_issued_by(ca)
    assert generated_identity() is identity  # made once per process


def test_tds7_context_stops_at_tls12_and_tds8_offers_alpn() -> None:
    tls = ServerTls(generated_identity(), "optional")
    assert tls.tds7.maximum_version == ssl.TLSVersion.TLSv1_2
    assert tls.tds8.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert "cert=" in tls.ready_fields() and "encryption=optional" in tls.ready_fields()


LOGINS = [{"name": "sa", "password": "x", "roles": ["sysadmin"]}]


def test_config_encryption_defaults_to_optional_and_checks_values() -> None:
    assert parse_server({"name": "S", "logins": LOGINS}, "t").encryption == "optional"
    assert parse_server({"name": "S", "logins": LOGINS, "encryption": "strict"}, "t").encryption == "strict"
    with pytest.raises(ConfigError, match="encryption must be one of optional, required, strict"):
        parse_server({"name": "S", "logins": LOGINS, "encryption": "yes"}, "t")
    with pytest.raises(ConfigError, match="both 'certificate' and 'private_key'"):
        parse_server({"name": "S", "logins": LOGINS, "certificate": "c.pem"}, "t")
