"""Fixtures for the channel tests: the vendor receivers, SMTP servers (plain, STARTTLS, TLS)
with a certificate of a throw-away CA, and the options that let channels point at loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hq_server.channels import ChannelOptions, Page
from tests.channels.receivers import Vendors, serve_vendors
from tests.peers import free_port

# Robots and accounts the receivers know, in each vendor's shape.
DINGTALK_SIGNED = "1" * 64
DINGTALK_PLAIN = "2" * 64
DINGTALK_SECRET = "SEC" + "3c" * 32
WECOM_KEY = "693a91f6-7d1e-4bc4-97a0-0ec2f1fa5aaa"
FEISHU_SIGNED = "5e3d587e-d78e-4a07-bd07-265f269f86fd"
FEISHU_PLAIN = "0b7f3c2a-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
FEISHU_SECRET = "nIMtb7r3N9pkXyXdtAbx6e"
WEBHOOK_SECRET = "webhook-signing-key-0123"
SMS_APIKEY = "sms-api-key-6f1d2c"
SMS_LOGIN = ("stationwatch", "gateway-pass-9a8b")
SMTP_LOGIN = ("duty-relay", "smtp-pass-4e5f")

LOOPBACK = ChannelOptions(allow_insecure=True, extra_hosts=frozenset({"127.0.0.1"}))


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    """The vendor receivers on 127.0.0.1 with the robots above registered."""
    for v in serve_vendors():
        v.dingtalk.update({DINGTALK_SIGNED: DINGTALK_SECRET, DINGTALK_PLAIN: None})
        v.wecom.add(WECOM_KEY)
        v.feishu.update({FEISHU_SIGNED: FEISHU_SECRET, FEISHU_PLAIN: None})
        v.webhook_secret = WEBHOOK_SECRET
        v.sms_apikey = SMS_APIKEY
        v.sms_login = SMS_LOGIN
        yield v


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate and a server certificate (with key) for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context with the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throw-away CA and a certificate it signed for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("StationWatch test CA"))
        .issuer_name(_name("StationWatch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass
class Mailbox:
    """What one SMTP server received: messages, envelopes and how each session was secured."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    arrived_at: list[float] = field(default_factory=list)  # wall clock, one per message


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.box.arrived_at.append(time.time())
        self.box.messages.append(parsed)
        self.box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.box.sessions.append(
            {
                # session.ssl is set by STARTTLS only; an SMTPS transport is TLS from the start.
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": bool(session.authenticated),
            }
        )
        return "250 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        == SMTP_LOGIN
    )
    return AuthResult(success=ok, handled=False)


def _start(box: Mailbox, **kwargs: Any) -> Controller:
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def smtp_plain() -> Iterator[Mailbox]:
    """An SMTP relay without TLS or login (a trusted relay)."""
    box = Mailbox(free_port())
    controller = _start(box)
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def smtp_starttls(tls_files: TlsFiles) -> Iterator[Mailbox]:
    """A submission server: STARTTLS required, then AUTH required."""
    box = Mailbox(free_port())
    controller = _start(
        box,
        tls_context=tls_files.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    )
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def smtp_tls(tls_files: TlsFiles) -> Iterator[Mailbox]:
    """An SMTPS server: TLS from the first byte, AUTH offered."""
    box = Mailbox(free_port())
    controller = _start(
        box,
        ssl_context=tls_files.server_context(),
        # aiosmtpd counts only STARTTLS as TLS, so AUTH must be allowed without it here (the
        # connection is TLS from its first byte); the test checks the login took place.
        auth_require_tls=False,
        authenticator=_authenticator,
    )
    try:
        yield box
    finally:
        controller.stop()


OPENED_AT = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def make_page(language: str = "zh-CN", **changes: Any) -> Page:
    """A grade-1 page about a transmitter off air, in `language`."""
    zh = language == "zh-CN"
    values: dict[str, Any] = {
        "kind": "opened",
        "language": language,
        "idempotency_key": f"page:7:opened:0:{language}",
        "ticket_id": 7,
        "ticket_number": "T-2026-0007",
        "grade": 1,
        "site": "北京发射台" if zh else "Beijing transmitter site",
        "device": "1号发射机" if zh else "FM transmitter 1",
        "title": "发射机停播" if zh else "Transmitter off air",
        "detail": "正向功率 0 W; 反射功率 0 W" if zh else "Forward power 0 W; reflected 0 W",
        "deadline": OPENED_AT + dt.timedelta(minutes=10),
        "zone": "Asia/Shanghai",
        "link": "https://hq.example.com/console/tickets/7",
    }
    values.update(changes)
    return Page.model_validate(values)
