"""E-mail through an SMTP server: multipart/alternative, plain text and HTML.

Standards: RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS on port 465),
RFC 4954 (AUTH), RFC 2046 (multipart/alternative), RFC 2047 (non-ASCII subjects).

`security` is "starttls" (port 587: plain connection, then STARTTLS before anything else;
a server that does not offer it is a failure, never a fallback to plain text), "ssl" (TLS
from the first byte, port 465) or "none" (a relay on a trusted network; a login is refused
without TLS unless the options allow insecure settings, as tests do). Certificates are
checked against the system's CAs, or `ca_file` for a private CA.

The Message-ID is derived from the page's idempotency key, so every attempt of one message
carries the same Message-ID (and an Idempotency-Key header) and a mail system can drop a
repeat.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from hq_server.channels import compose
from hq_server.channels.base import (
    ChannelConfig,
    FieldProblem,
    Page,
    Prepared,
    Timeouts,
    options_of,
)
from hq_server.channels.errors import DeliveryError, redact
from hq_server.channels.validation import EmailAddress, check_email, check_hostname

IDEMPOTENCY_HEADER = "Idempotency-Key"


def message_id(key: str, sender: str) -> str:
    """The Message-ID of every attempt of the message with idempotency key `key`."""
    domain = sender.rpartition("@")[2] or "stationwatch"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class EmailConfig(ChannelConfig):
    """The SMTP server, the login, the sender and the contact's addresses."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=200)
    password: SecretStr | None = None
    ca_file: str | None = None
    sender: str
    to: tuple[EmailAddress, ...] = Field(min_length=1, max_length=20)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_hostname(value)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return check_email(value)

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("expected the path of a PEM file of CA certificates")
        return value

    @model_validator(mode="after")
    def _login(self, info: ValidationInfo) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise FieldProblem("password", "username and password together")
        if (
            self.password is not None
            and self.security == "none"
            and not options_of(info.context).allow_insecure
        ):
            raise FieldProblem("security", "starttls or ssl when logging in (no password in clear)")
        return self


class EmailChannel:
    """A multipart (text + HTML) e-mail to the contact's addresses."""

    kind: ClassVar[str] = "email"
    config_model: ClassVar[type[ChannelConfig]] = EmailConfig

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    @property
    def target(self) -> str:
        """The addresses (not secrets)."""
        return "e-mail to " + ", ".join(self.config.to)

    def message(self, page: Page, now: datetime | None = None) -> EmailMessage:
        """The e-mail of the page."""
        config = self.config
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = config.sender
        message["To"] = ", ".join(config.to)
        message["Subject"] = compose.subject(page)
        message["Date"] = format_datetime(now or datetime.now(UTC))
        message["Message-ID"] = message_id(page.idempotency_key, config.sender)
        message[IDEMPOTENCY_HEADER] = page.idempotency_key
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        message.set_content(compose.plain_text(page))
        message.add_alternative(compose.html(page), subtype="html")
        # After add_alternative, which moves every Content-* header into the first part.
        message["Content-Language"] = page.language
        return message

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The message as SMTP sends it; the envelope in the headers MAIL FROM / RCPT TO."""
        config = self.config
        scheme = "smtps" if config.security == "ssl" else "smtp"
        return Prepared(
            "SMTP",
            f"{scheme}://{config.host}:{config.port}",
            {"MAIL FROM": config.sender, "RCPT TO": ", ".join(config.to)},
            self.message(page, now).as_bytes(),
            secrets=(config.password.get_secret_value(),) if config.password else (),
        )

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """Deliver once to the SMTP server; refused recipients or login fail for good."""
        config = self.config
        smtp: smtplib.SMTP
        try:
            if config.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=timeouts.connect, context=self._tls()
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=timeouts.connect)
            with smtp:
                if smtp.sock is not None:
                    smtp.sock.settimeout(timeouts.read)
                if config.security == "starttls":
                    smtp.starttls(context=self._tls())
                if config.username is not None and config.password is not None:
                    smtp.login(config.username, config.password.get_secret_value())
                refused = smtp.sendmail(config.sender, list(config.to), prepared.body)
        except smtplib.SMTPNotSupportedError as exc:
            raise self._error(f"the server does not support {exc}", False, prepared) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise self._error(f"login refused: {exc.smtp_code}", False, prepared) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(f"{rcpt} {code}" for rcpt, (code, _) in exc.recipients.items())
            raise self._error(f"recipients refused: {codes}", False, prepared) from None
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise self._error(
                f"SMTP {exc.smtp_code} {text}".strip(), exc.smtp_code < 500, prepared
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._error(
                f"TLS certificate not trusted: {exc.verify_message}", False, prepared
            ) from None
        except TimeoutError:
            raise self._error(
                f"no answer within {timeouts.connect:g}/{timeouts.read:g} s", True, prepared
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise self._error(f"{type(exc).__name__}: {exc}", True, prepared) from None
        if refused:
            # Some recipients took it: retrying would send the others a second copy.
            logger_text = ", ".join(f"{rcpt} {code}" for rcpt, (code, _) in refused.items())
            raise self._error(f"some recipients refused: {logger_text}", False, prepared)

    def _error(self, reason: str, retryable: bool, prepared: Prepared) -> DeliveryError:
        return DeliveryError(redact(reason, prepared.secrets), retryable=retryable)
