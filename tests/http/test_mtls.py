"""Mutual TLS (issue 4): trustme certificates against a real TLS listener running a tiny app.

The app has one handler that calls `require_certificate_matches` for the trust named in ``X-Test-Caller``
(standing in for the bearer token's subject), so these tests exercise the TLS context, the handshake and
the certificate-to-trust binding without the rest of the service. Catalogue: S9 (certificate of trust A,
token of trust B -> 403 sender-mismatch) and S13 (expired, other CA, or not on the allowlist -> handshake
failure or 403).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from service.errors import ConfigError, HandoverError
from service.identity.registry import Participant, Registry, registry_from_document
from service.identity.tls import (
    TlsSettings,
    certificate_fingerprint,
    certificate_owner,
    normalise_fingerprint,
    require_certificate_matches,
    server_ssl_context,
    tls_settings_from_env,
)
from tests.support.hub import ROOT, free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Credential:
    """A client certificate and key written to disk, and its fingerprint."""

    cert: Path
    key: Path
    fingerprint: str


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: TlsSettings  # with the client CA set: mutual TLS
    rm1: Credential
    rde: Credential
    unpinned: Credential  # from the right CA, pinned by nobody
    expired: Credential  # from the right CA, pinned by RM1, but past its notAfter
    foreign: Credential  # from another CA, pinned by RM1


def _write(leaf: trustme.LeafCert, directory: Path, name: str) -> Credential:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))
    return Credential(cert, key, certificate_fingerprint(der))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = Path(tmp_path_factory.mktemp("mtls"))
    ca, other_ca = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = _write(ca.issue_cert("127.0.0.1", common_name="handover hub"), directory, "server")
    now = datetime.now(UTC)
    return Pki(
        ca=directory / "ca.pem",
        server=TlsSettings(cert=server.cert, key=server.key, client_ca=directory / "ca.pem"),
        rm1=_write(ca.issue_cert("rm1.trust.example", common_name="RM1"), directory, "rm1"),
        rde=_write(ca.issue_cert("rde.trust.example", common_name="RDE"), directory, "rde"),
        unpinned=_write(ca.issue_cert("nobody.example", common_name="unpinned"), directory, "unpinned"),
        expired=_write(
            ca.issue_cert(
                "rm1.trust.example",
                common_name="RM1 (expired)",
                not_before=now - timedelta(days=30),
                not_after=now - timedelta(days=1),
            ),
            directory,
            "expired",
        ),
        foreign=_write(other_ca.issue_cert("rm1.trust.example", common_name="RM1 (other CA)"), directory, "foreign"),
    )


def registry_pinning(pins: dict[str, list[str]]) -> Registry:
    """The repository's network registry with `pins` as the named participants' certificate fingerprints."""
    doc = json.loads((ROOT / "keys" / "network.json").read_text(encoding="utf-8"))
    for ods, fingerprints in pins.items():
        doc["participants"][ods]["cert_fingerprints"] = fingerprints
    return registry_from_document(doc)


@pytest.fixture(scope="module")
def registry(pki: Pki) -> Registry:
    return registry_pinning(
        {"RM1": [pki.rm1.fingerprint, pki.expired.fingerprint, pki.foreign.fingerprint], "RDE": [pki.rde.fingerprint]}
    )


@dataclass
class TinyHub:
    """A listening tiny app: its URL, the registry it checks against (swappable), and how often it answered."""

    base_url: str
    registry: Registry
    answered: int = 0
    handshake_failures: list[str] = field(default_factory=list)  # the server's own reason for each refusal


TINY_HUB = web.AppKey("tiny_hub", TinyHub)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HandoverError as error:
        return web.json_response({"code": error.code.value}, status=error.status)


async def check_caller(request: web.Request) -> web.Response:
    state = request.app[TINY_HUB]
    require_certificate_matches(request, request.headers["X-Test-Caller"], state.registry)
    state.answered += 1
    return web.json_response({"ok": True})


@asynccontextmanager
async def tiny_hub(registry: Registry, ssl_context: ssl.SSLContext | None) -> AsyncIterator[TinyHub]:
    port = free_port()
    state = TinyHub(f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}", registry)
    app = web.Application(middlewares=[error_middleware])
    app[TINY_HUB] = state
    app.router.add_get("/whoami", check_caller)
    if ssl_context is not None:
        ssl_context.sslobject_class = _recording_handshake_failures(state)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        yield state
    finally:
        await runner.cleanup()


def _recording_handshake_failures(state: TinyHub) -> type[ssl.SSLObject]:
    """An SSLObject class for the server side that notes why each handshake failed (the client only sees the
    connection reset, as asyncio closes without waiting for the alert to be read)."""

    class Recording(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLCertVerificationError as err:
                state.handshake_failures.append(f"{err.reason}: {err.verify_message}")
                raise
            except ssl.SSLError as err:
                state.handshake_failures.append(str(err.reason))
                raise

    return Recording


@pytest.fixture
async def mtls_hub(pki: Pki, registry: Registry) -> AsyncIterator[TinyHub]:
    async with tiny_hub(registry, server_ssl_context(pki.server)) as state:
        yield state


def client_context(pki: Pki, credential: Credential | None, *, tls: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that trusts the test CA, presents `credential` (if any) and optionally speaks only `tls`."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    if tls is not None:
        context.minimum_version = context.maximum_version = tls
    if credential is not None:
        context.load_cert_chain(credential.cert, credential.key)
    return context


async def call(
    hub: TinyHub,
    context: ssl.SSLContext | None,
    caller: str,
    *,
    headers: dict[str, str] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, dict[str, Any]]:
    sent = {"X-Test-Caller": caller, **(headers or {})}
    async with aiohttp.ClientSession() if session is None else _borrowed(session) as client:
        ssl_arg: ssl.SSLContext | bool = context if context is not None else True
        async with client.get(f"{hub.base_url}/whoami", headers=sent, ssl=ssl_arg) as resp:
            return resp.status, await resp.json()


@asynccontextmanager
async def _borrowed(session: aiohttp.ClientSession) -> AsyncIterator[aiohttp.ClientSession]:
    yield session


HANDSHAKE_FAILED = (aiohttp.ClientError, ssl.SSLError, ConnectionError)
CLIENT_TLS_VERSIONS = pytest.mark.parametrize(
    "tls", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"]
)


async def expect_handshake_failure(hub: TinyHub, context: ssl.SSLContext, reason: str) -> None:
    """The call fails at the TLS layer, the server's handshake failed for `reason`, and the handler never ran."""
    with pytest.raises(HANDSHAKE_FAILED):
        await call(hub, context, "RM1")
    assert hub.answered == 0
    # Under TLS 1.3 the client finishes its side first and sees a disconnect, which aiohttp retries once.
    assert hub.handshake_failures, "the server saw no failed handshake"
    assert all(reason in failure for failure in hub.handshake_failures), hub.handshake_failures


# --- the binding of certificate to token ----------------------------------------------------------------------


@CLIENT_TLS_VERSIONS
async def test_certificate_of_the_token_trust_is_accepted(mtls_hub: TinyHub, pki: Pki, tls: ssl.TLSVersion) -> None:
    assert await call(mtls_hub, client_context(pki, pki.rm1, tls=tls), "RM1") == (200, {"ok": True})
    assert await call(mtls_hub, client_context(pki, pki.rde, tls=tls), "RDE") == (200, {"ok": True})


async def test_s9_certificate_of_another_trust_than_the_token_is_sender_mismatch(mtls_hub: TinyHub, pki: Pki) -> None:
    """S9: trust B's token (and so its signing key) over trust A's mTLS channel."""
    assert await call(mtls_hub, client_context(pki, pki.rm1), "RDE") == (403, {"code": "sender-mismatch"})
    assert await call(mtls_hub, client_context(pki, pki.rde), "RM1") == (403, {"code": "sender-mismatch"})
    assert mtls_hub.answered == 0


async def test_s9_forwarded_certificate_headers_are_ignored(mtls_hub: TinyHub, pki: Pki) -> None:
    """ASVS V4.1.3: a client cannot claim another certificate in a header; only the connection's counts."""
    rde_pem = pki.rde.cert.read_text(encoding="ascii")
    forged = {
        "X-SSL-Client-Cert": rde_pem.replace("\n", " "),
        "X-Client-Cert": rde_pem.replace("\n", ""),
        "X-Forwarded-Client-Cert": f"Hash={pki.rde.fingerprint}",
        "X-Client-Cert-Fingerprint": pki.rde.fingerprint,
    }
    status, body = await call(mtls_hub, client_context(pki, pki.rm1), "RDE", headers=forged)
    assert (status, body) == (403, {"code": "sender-mismatch"})


# --- S13: certificates that must not get in ------------------------------------------------------------------


@CLIENT_TLS_VERSIONS
async def test_s13_certificate_from_another_ca_fails_the_handshake(
    mtls_hub: TinyHub, pki: Pki, tls: ssl.TLSVersion
) -> None:
    """Pinned by RM1, but not issued by the configured client CA: the pin alone does not let it in."""
    await expect_handshake_failure(mtls_hub, client_context(pki, pki.foreign, tls=tls), "unable to get local issuer")


@CLIENT_TLS_VERSIONS
async def test_s13_expired_certificate_fails_the_handshake(mtls_hub: TinyHub, pki: Pki, tls: ssl.TLSVersion) -> None:
    """Pinned by RM1 and issued by the right CA, but past its notAfter."""
    await expect_handshake_failure(mtls_hub, client_context(pki, pki.expired, tls=tls), "certificate has expired")


@CLIENT_TLS_VERSIONS
async def test_s13_no_client_certificate_fails_the_handshake(mtls_hub: TinyHub, pki: Pki, tls: ssl.TLSVersion) -> None:
    await expect_handshake_failure(mtls_hub, client_context(pki, None, tls=tls), "PEER_DID_NOT_RETURN_A_CERTIFICATE")


async def test_s13_certificate_not_on_the_allowlist_is_forbidden(mtls_hub: TinyHub, pki: Pki) -> None:
    """Issued by the right CA, but no participant pins it."""
    assert await call(mtls_hub, client_context(pki, pki.unpinned), "RM1") == (403, {"code": "forbidden"})
    assert mtls_hub.answered == 0


async def test_s13_certificate_removed_from_the_allowlist_is_forbidden_at_once(mtls_hub: TinyHub, pki: Pki) -> None:
    """Revocation = removing the pin from the registry: refused from the next request, even on an open
    keep-alive connection, without restarting the listener."""
    context = client_context(pki, pki.rde)
    async with aiohttp.ClientSession() as session:
        assert await call(mtls_hub, context, "RDE", session=session) == (200, {"ok": True})
        mtls_hub.registry = registry_pinning({"RM1": [pki.rm1.fingerprint], "RDE": []})
        assert await call(mtls_hub, context, "RDE", session=session) == (403, {"code": "forbidden"})
        assert await call(mtls_hub, context, "RM1", session=session) == (403, {"code": "forbidden"})
    assert mtls_hub.answered == 1


async def test_s13_certificate_of_a_former_participant_is_forbidden(mtls_hub: TinyHub, pki: Pki) -> None:
    """RN5 left the network ("active": false); a certificate it still pins identifies nobody."""
    mtls_hub.registry = registry_pinning({"RN5": [pki.unpinned.fingerprint]})
    assert await call(mtls_hub, client_context(pki, pki.unpinned), "RN5") == (403, {"code": "forbidden"})


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_s13_tls_1_1_client_is_refused(mtls_hub: TinyHub, pki: Pki) -> None:
    """TLS 1.2 is the floor; a client that can only speak TLS 1.1 (with a valid, pinned certificate) fails."""
    context = client_context(pki, pki.rm1)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    await expect_handshake_failure(mtls_hub, context, "UNSUPPORTED_PROTOCOL")


# --- where there is nothing to check ---------------------------------------------------------------------------


async def test_plain_http_is_not_checked(registry: Registry) -> None:
    async with tiny_hub(registry, None) as hub:
        assert await call(hub, None, "RDE", headers={"X-SSL-Client-Cert": "forged"}) == (200, {"ok": True})


async def test_tls_without_a_client_ca_does_not_ask_for_certificates(pki: Pki, registry: Registry) -> None:
    server = server_ssl_context(replace(pki.server, client_ca=None))
    assert server.verify_mode == ssl.CERT_NONE
    async with tiny_hub(registry, server) as hub:
        assert await call(hub, client_context(pki, None), "RDE") == (200, {"ok": True})
        assert await call(hub, client_context(pki, pki.rm1), "RDE") == (200, {"ok": True})


# --- the pieces --------------------------------------------------------------------------------------------------


def test_server_context_is_tls_1_2_plus_with_required_client_certificates(pki: Pki) -> None:
    context = server_ssl_context(pki.server)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.options & ssl.OP_NO_COMPRESSION and context.options & ssl.OP_NO_RENEGOTIATION
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12)
    assert len(context.get_ca_certs()) == 1  # only the configured client CA, never the system store


def test_server_context_refuses_unloadable_files(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n", encoding="ascii")
    with pytest.raises(ConfigError, match="HANDOVER_TLS_CERT"):
        server_ssl_context(replace(pki.server, cert=junk))
    with pytest.raises(ConfigError, match="HANDOVER_TLS_CLIENT_CA"):
        server_ssl_context(replace(pki.server, client_ca=junk))


def test_tls_settings_from_env(pki: Pki) -> None:
    cert, key, ca = str(pki.server.cert), str(pki.server.key), str(pki.ca)
    assert tls_settings_from_env({}) is None
    assert tls_settings_from_env({"HANDOVER_TLS_CERT": ""}) is None
    assert tls_settings_from_env({"HANDOVER_TLS_CERT": cert, "HANDOVER_TLS_KEY": key}) == TlsSettings(
        Path(cert), Path(key), None
    )
    full = {"HANDOVER_TLS_CERT": cert, "HANDOVER_TLS_KEY": key, "HANDOVER_TLS_CLIENT_CA": ca}
    assert tls_settings_from_env(full) == TlsSettings(Path(cert), Path(key), Path(ca))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HANDOVER_TLS_CERT": "{cert}"}, "HANDOVER_TLS_KEY"),
        ({"HANDOVER_TLS_KEY": "{key}"}, "HANDOVER_TLS_CERT"),
        ({"HANDOVER_TLS_CLIENT_CA": "{ca}"}, "HANDOVER_TLS_CERT"),
        ({"HANDOVER_TLS_CERT": "{cert}", "HANDOVER_TLS_KEY": "/nonexistent/key.pem"}, "HANDOVER_TLS_KEY"),
        (
            {"HANDOVER_TLS_CERT": "{cert}", "HANDOVER_TLS_KEY": "{key}", "HANDOVER_TLS_CLIENT_CA": "/nonexistent"},
            "HANDOVER_TLS_CLIENT_CA",
        ),
    ],
)
def test_tls_settings_from_env_refuses_incomplete_settings(pki: Pki, env: dict[str, str], named: str) -> None:
    paths = {"cert": pki.server.cert, "key": pki.server.key, "ca": pki.ca}
    with pytest.raises(ConfigError, match=named):
        tls_settings_from_env({name: value.format(**paths) for name, value in env.items()})


def test_fingerprints_are_compared_after_normalising() -> None:
    digest = "ab" * 32
    colons = ":".join(["AB"] * 32)
    assert normalise_fingerprint(f"sha256:{digest.upper()}") == digest
    assert normalise_fingerprint(f"SHA256 Fingerprint={colons}") == digest
    pinned = [_participant("RM1", f"sha256:{colons}"), _participant("RDE", "cd" * 32)]
    assert certificate_owner(digest, pinned) == "RM1"
    assert certificate_owner(colons.lower(), pinned) == "RM1"
    assert certificate_owner("ef" * 32, pinned) is None


def test_ambiguous_or_former_pins_identify_nobody() -> None:
    digest = "ab" * 32
    assert certificate_owner(digest, [_participant("RM1", digest), _participant("RDE", digest)]) is None
    assert certificate_owner(digest, [_participant("RN5", digest, active=False)]) is None


def _participant(ods: str, *pins: str, active: bool = True) -> Participant:
    return Participant(
        ods=ods, name=ods, role="referrer", endpoint=None, keys=(), cert_fingerprints=pins, active=active
    )
