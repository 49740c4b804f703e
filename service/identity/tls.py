"""Optional (mutual) TLS: the server's TLS context and the binding of a client certificate to a trust.

This module owns:

- reading ``HANDOVER_TLS_CERT``, ``HANDOVER_TLS_KEY`` and ``HANDOVER_TLS_CLIENT_CA`` (`tls_settings_from_env`);
  none set means plain HTTP (development, or TLS ended elsewhere);
- building the server's `ssl.SSLContext` (`server_ssl_context`): TLS 1.2 minimum (1.3 preferred), forward-secret
  AEAD cipher suites only, no compression, no renegotiation, no session resumption, and, when a client CA is
  configured, a client certificate that chains to that CA is *required* in the handshake (so an expired
  certificate, or one from another CA, fails the handshake);
- the per-trust allowlist: a certificate is identified by its fingerprint (`client_certificate_fingerprint`), a
  trust pins the fingerprints of its certificates in the network registry (``cert_fingerprints``), and
  `require_certificate_matches` insists that the pinning trust is the trust the bearer token names
  (RELIABILITY-SECURITY.md item 5: certificate owner = token owner = signing key owner, else 403
  ``sender-mismatch``). Removing a fingerprint from the registry revokes the certificate at the next request.

Fingerprint format: SHA-256 of the certificate's DER encoding, as 64 lower-case hex digits with no separators
(``hashlib.sha256(der).hexdigest()``). Fingerprints from elsewhere are compared after `normalise_fingerprint`:
an optional ``sha256:`` (or OpenSSL's ``SHA256 Fingerprint=``) prefix, colons and whitespace removed, case
folded; so ``openssl x509 -noout -fingerprint -sha256 -in trust.pem`` output can be pasted.

Forwarded-certificate headers (``X-SSL-Client-Cert``, ``X-Client-Cert``, ``X-Forwarded-Client-Cert``,
``SSL_CLIENT_CERT`` and the like) are never read: the only certificate that counts is the one the TLS
connection itself carried, as seen by this process (OWASP ASVS V4.1.3). Where TLS is ended at a proxy, the
hub cannot bind certificates to tokens, and the proxy must strip any such headers a client sends.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from service.errors import Code, ConfigError, HandoverError
from service.identity.registry import Participant, Registry

ENV_CERT = "HANDOVER_TLS_CERT"
ENV_KEY = "HANDOVER_TLS_KEY"
ENV_CLIENT_CA = "HANDOVER_TLS_CLIENT_CA"

# TLS 1.2 suites (OpenSSL names): ECDHE key exchange and AEAD only, as Mozilla's "intermediate" profile
# without the finite-field DHE suites. TLS 1.3 suites are all AEAD and forward secret; OpenSSL's default
# TLS 1.3 list is kept.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

_NOT_ALLOWLISTED = "the client certificate is not on the network's allowlist"
_OTHER_OWNER = "the client certificate belongs to another organisation than the bearer token"
_NO_CERTIFICATE = "a client certificate is required on this hub"


@dataclass(frozen=True)
class TlsSettings:
    """Where the server's certificate chain and key are, and the CA bundle client certificates must chain to.

    `client_ca` None means TLS without client certificates (server authentication only).
    """

    cert: Path
    key: Path
    client_ca: Path | None


def tls_settings_from_env(env: Mapping[str, str]) -> TlsSettings | None:
    """The TLS settings in `env`, or None when ``HANDOVER_TLS_CERT`` is unset or empty (plain HTTP).

    ConfigError (naming the variable) if the certificate is set without the key, the key or client CA is set
    without the certificate, or a named file does not exist.
    """
    cert, key, client_ca = (env.get(name) or None for name in (ENV_CERT, ENV_KEY, ENV_CLIENT_CA))
    if cert is None:
        for name, value in ((ENV_KEY, key), (ENV_CLIENT_CA, client_ca)):
            if value is not None:
                raise ConfigError(f"{name} is set but {ENV_CERT} is not; set both or neither")
        return None
    if key is None:
        raise ConfigError(f"{ENV_CERT} is set but {ENV_KEY} is not; the server needs its private key")
    settings = TlsSettings(cert=Path(cert), key=Path(key), client_ca=Path(client_ca) if client_ca else None)
    for name, path in ((ENV_CERT, settings.cert), (ENV_KEY, settings.key), (ENV_CLIENT_CA, settings.client_ca)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{name} must name a readable file, got {str(path)!r}")
    return settings


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server-side TLS context for `tls` (see the module docstring); ConfigError if a file will not load.

    Built from a bare `ssl.PROTOCOL_TLS_SERVER` context, so the only CAs trusted for client certificates are
    the ones in `tls.client_ca` (never the system's web CAs).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE | ssl.OP_NO_TICKET
    context.num_tickets = 0  # no TLS 1.3 resumption: every connection verifies the client chain and dates afresh
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile=tls.cert, keyfile=tls.key)
    except (OSError, ssl.SSLError):
        raise ConfigError(f"{ENV_CERT} and {ENV_KEY} must be a PEM certificate chain and its private key") from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ssl.SSLError):
            raise ConfigError(f"{ENV_CLIENT_CA} must be a PEM file of CA certificates") from None
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def certificate_fingerprint(der: bytes) -> str:
    """The fingerprint of a DER-encoded certificate: SHA-256, 64 lower-case hex digits, no separators."""
    return hashlib.sha256(der).hexdigest()


def normalise_fingerprint(value: str) -> str:
    """`value` in the module's fingerprint format: ``sha256:`` / ``SHA256 Fingerprint=`` prefix, colons and
    whitespace removed, lower case. (Not validated: a malformed value simply matches nothing.)"""
    text = "".join(value.split()).lower()
    for prefix in ("sha256fingerprint=", "sha256:"):
        text = text.removeprefix(prefix)
    return text.replace(":", "")


def client_certificate_fingerprint(request: web.BaseRequest) -> str | None:
    """The fingerprint of the client certificate this request's TLS connection carried.

    None on plain HTTP, on TLS without a client certificate, or once the connection is gone. Only the
    connection is consulted, never a header.
    """
    ssl_object = _ssl_object(request)
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return certificate_fingerprint(der) if der else None


def certificate_owner(fingerprint: str, participants: Iterable[Participant]) -> str | None:
    """The ODS code of the one current participant that pins `fingerprint` (normalised comparison).

    None if no current participant pins it, including a former (``"active": false``) participant's
    certificate; also None if several do (an ambiguous pin identifies nobody).
    """
    wanted = normalise_fingerprint(fingerprint)
    owners = {
        participant.ods
        for participant in participants
        if participant.active and any(normalise_fingerprint(pin) == wanted for pin in participant.cert_fingerprints)
    }
    return owners.pop() if len(owners) == 1 else None


def require_certificate_matches(request: web.BaseRequest, caller_ods: str, registry: Registry) -> None:
    """Insist that the request's client certificate belongs to `caller_ods` (the bearer token's trust).

    No-op on plain HTTP and on TLS where client certificates are not requested (no client CA configured).
    Where they are: 403 ``forbidden`` if there is no certificate or no current participant pins it, and
    403 ``sender-mismatch`` if it is pinned by another organisation than `caller_ods`. Fails closed
    (``forbidden``) if the connection has already gone, as its certificate can no longer be checked.
    """
    if request.transport is None:
        raise HandoverError(Code.FORBIDDEN, "the connection closed before its client certificate could be checked")
    ssl_object = _ssl_object(request)
    if ssl_object is None or ssl_object.context.verify_mode == ssl.CERT_NONE:
        return
    fingerprint = client_certificate_fingerprint(request)
    if fingerprint is None:
        raise HandoverError(Code.FORBIDDEN, _NO_CERTIFICATE)
    owner = certificate_owner(fingerprint, registry.participants.values())
    if owner is None:
        raise HandoverError(Code.FORBIDDEN, _NOT_ALLOWLISTED)
    if owner != caller_ods:
        raise HandoverError(Code.SENDER_MISMATCH, _OTHER_OWNER)


def _ssl_object(request: web.BaseRequest) -> ssl.SSLObject | None:
    transport = request.transport
    found = transport.get_extra_info("ssl_object") if transport is not None else None
    return found if isinstance(found, ssl.SSLObject) else None
