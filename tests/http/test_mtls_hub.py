"""Mutual TLS on the real hub: the client certificate's trust, the token's trust and the signer must agree."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from service.identity.tls import TlsSettings, certificate_fingerprint, server_ssl_context
from tests.support.hub import Network, running_hub
from tests.support.messages import error_codes, referral


def issue(ca: trustme.CA, name: str, directory: Path) -> tuple[Path, Path, str]:
    leaf = ca.issue_cert(f"{name.lower()}.trust.example", common_name=name)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))
    return cert, key, certificate_fingerprint(der)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    tls = TlsSettings(tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem")
    return {"tls": tls, "ca": tmp_path / "ca.pem", "RM1": issue(ca, "RM1", tmp_path), "RDE": issue(ca, "RDE", tmp_path)}


def client(pki: dict[str, Any], ods: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    cert, key, _ = pki[ods]
    context.load_cert_chain(cert, key)
    return context


def pinned(pki: dict[str, Any]) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        for ods in ("RM1", "RDE"):
            doc["participants"][ods]["cert_fingerprints"] = [pki[ods][2]]

    return edit


async def test_message_over_its_own_trusts_certificate_is_accepted(
    network: Network, database: str, pki: dict[str, Any], tmp_path: Path
) -> None:
    pinned_network = network.edited(tmp_path / "net", pinned(pki))
    async with running_hub(
        pinned_network, database, ssl_context=server_ssl_context(pki["tls"]), client_ssl=client(pki, "RM1")
    ) as hub:
        assert hub.base_url.startswith("https://")
        status, body, _ = await hub.post_raw(json.dumps(hub.trust("RM1").sign(referral())).encode())
        assert status == 202, body


async def test_s9_token_and_signature_of_rde_over_rm1s_certificate_is_403(
    network: Network, database: str, pki: dict[str, Any], tmp_path: Path
) -> None:
    pinned_network = network.edited(tmp_path / "net", pinned(pki))
    async with running_hub(
        pinned_network, database, ssl_context=server_ssl_context(pki["tls"]), client_ssl=client(pki, "RM1")
    ) as hub:
        signed = hub.trust("RDE").sign(referral("RDE"))
        status, body, _ = await hub.post_raw(json.dumps(signed).encode(), as_ods="RDE")
        assert status == 403
        assert "sender-mismatch" in error_codes(body)
        inbox = f"{hub.base_url}/mailbox/RDE/inbox"
        async with hub.session.get(inbox, headers={"Authorization": f"Bearer {hub.trust('RDE').bearer_token()}"}) as r:
            assert r.status == 403, "RDE's mailbox cannot be read over RM1's certificate"


async def test_s13_no_client_certificate_fails_the_handshake(
    network: Network, database: str, pki: dict[str, Any], tmp_path: Path
) -> None:
    pinned_network = network.edited(tmp_path / "net", pinned(pki))
    no_cert = ssl.create_default_context(cafile=str(pki["ca"]))
    async with running_hub(
        pinned_network, database, ssl_context=server_ssl_context(pki["tls"]), client_ssl=no_cert
    ) as hub:
        with pytest.raises(aiohttp.ClientError):
            await hub.post_raw(json.dumps(hub.trust("RM1").sign(referral())).encode())
