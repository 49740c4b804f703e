"""Specification of service/identity/registry.py and service/identity/keystore.py: the default network, strict
loading of keys/network.json, and development key generation (``handover keys init``). Everything runs on copies in
temporary directories; nothing is written under keys/."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.errors import Code, HandoverError
from service.identity.keystore import KeyInitReport, generate_private_jwk, init_keys, load_private_jwk, public_jwk
from service.identity.registry import Registry, RegistryError, load_registry, registry_from_document
from service.identity.signing import sign_bundle, thumbprint, verify_bundle_signature

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NETWORK = ROOT / "keys" / "network.json"
CURRENT = ("RGT", "RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR")
REFERRERS = ("RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR")
FORMER = ("RN5", "RWE")


@pytest.fixture
def network_copy(tmp_path: Path) -> Path:
    path = tmp_path / "network.json"
    shutil.copy(DEFAULT_NETWORK, path)
    return path


@pytest.fixture
def initialised(network_copy: Path, tmp_path: Path) -> tuple[Path, Path, KeyInitReport]:
    keys_dir = tmp_path / "private"
    return network_copy, keys_dir, init_keys(network_copy, keys_dir)


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- the default network


def test_default_network_loads_as_committed() -> None:
    registry = load_registry(DEFAULT_NETWORK)
    assert registry.network == "east-anglia-liver-mets"
    assert registry.centre().ods == "RGT"
    assert "Addenbrooke's" in registry.centre().name
    assert [p.ods for p in registry.referrers()] == list(REFERRERS)
    assert [p.ods for p in registry.former_participants()] == list(FORMER)
    for participant in registry.participants.values():
        assert all(k.status in ("active", "retiring", "revoked") for k in participant.keys)
        assert all("d" not in k.public_jwk for k in participant.keys), "the committed registry holds public keys only"


def test_default_network_names_the_contracts_trusts() -> None:
    registry = load_registry(DEFAULT_NETWORK)
    names = {ods: p.name for ods, p in registry.participants.items()}
    assert set(names) == set(CURRENT) | set(FORMER)
    assert "Norfolk and Norwich" in names["RM1"] and "Ipswich" in names["RDE"]
    assert "Peterborough" in names["RGN"] and "Hinchingbrooke" in names["RGN"]
    assert "Bedford" in names["RC9"] and "James Paget" in names["RGP"]
    assert "King's Lynn" in names["RCX"] and "West Suffolk" in names["RGR"]
    assert "Basingstoke" in names["RN5"] and "Leicester" in names["RWE"]


def test_keys_directory_is_ignored_by_git() -> None:
    assert "private/" in (ROOT / "keys" / ".gitignore").read_text().splitlines()


def test_former_pathways_can_neither_send_nor_receive() -> None:
    registry = load_registry(DEFAULT_NETWORK)
    for ods in FORMER:
        assert not registry.is_participant(ods)
        assert registry.participant(ods) is None
        former = registry.former(ods)
        assert former is not None and not former.active
    for ods in CURRENT:
        assert registry.is_participant(ods) and registry.former(ods) is None
    assert not registry.is_participant("XYZ")
    assert not registry.is_participant("hub")


def test_registry_without_hub_key_says_to_run_keys_init() -> None:
    with pytest.raises(RegistryError, match="keys init"):
        load_registry(DEFAULT_NETWORK).active_hub_key()


# ---------------------------------------------------------------- keys init on a copy


def test_init_keys_creates_a_key_for_the_hub_and_each_current_participant(
    initialised: tuple[Path, Path, KeyInitReport],
) -> None:
    network, keys_dir, report = initialised
    assert report.created == ("hub", *CURRENT)
    assert report.kept == () and report.registered == ()
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted(f"{o}.jwk" for o in ("hub", *CURRENT))
    registry = load_registry(network)
    for owner in CURRENT:
        private = load_private_jwk(keys_dir, owner)
        assert set(private) >= {"kty", "crv", "x", "y", "d", "kid", "alg"}
        assert (private["kty"], private["crv"], private["alg"]) == ("EC", "P-256", "ES256")
        assert private["kid"] == thumbprint(private)
        participant = registry.participant(owner)
        assert participant is not None
        assert [(k.kid, k.status, k.alg) for k in participant.keys] == [(private["kid"], "active", "ES256")]
        entry = registry.key(private["kid"])
        assert entry is not None and entry.owner_ods == owner
        assert registry.hub_key(private["kid"]) is None
    hub = load_private_jwk(keys_dir, "hub")
    assert registry.active_hub_key().kid == hub["kid"]
    assert registry.hub_key(hub["kid"]) == registry.key(hub["kid"])
    assert registry.active_hub_key().owner_ods == "hub"
    for ods in FORMER:
        assert not (keys_dir / f"{ods}.jwk").exists()
        former = registry.former(ods)
        assert former is not None and former.keys == ()


def test_private_keys_are_mode_0600_in_a_0700_directory(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    _, keys_dir, _ = initialised
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for path in keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_init_keys_writes_the_registry_tidily(initialised: tuple[Path, Path, KeyInitReport], tmp_path: Path) -> None:
    network, _, _ = initialised
    text = network.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "\n  " in text
    doc = read(network)
    original = read(DEFAULT_NETWORK)
    assert doc["description"] == original["description"]
    assert list(doc["participants"]) == list(original["participants"])
    assert doc["participants"]["RN5"] == original["participants"]["RN5"]
    key = doc["participants"]["RM1"]["jwks"]["keys"][0]
    assert list(key) == ["kid", "kty", "crv", "x", "y", "alg", "use", "status"]
    assert '"d":' not in text
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_init_keys_keeps_existing_keys_without_force(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    network, keys_dir, _ = initialised
    before = {p.name: p.read_bytes() for p in keys_dir.iterdir()}
    registry_before = network.read_bytes()
    report = init_keys(network, keys_dir)
    assert report.created == () and report.registered == ()
    assert report.kept == ("hub", *CURRENT)
    assert {p.name: p.read_bytes() for p in keys_dir.iterdir()} == before
    assert network.read_bytes() == registry_before, "nothing changed, so the registry is not rewritten"


def test_init_keys_with_force_replaces_keys(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    network, keys_dir, _ = initialised
    old = {o: load_private_jwk(keys_dir, o)["kid"] for o in ("hub", *CURRENT)}
    report = init_keys(network, keys_dir, force=True)
    assert report.created == ("hub", *CURRENT) and report.kept == ()
    registry = load_registry(network)
    for owner in CURRENT:
        new = load_private_jwk(keys_dir, owner)["kid"]
        assert new != old[owner]
        participant = registry.participant(owner)
        assert participant is not None
        assert [k.kid for k in participant.keys] == [new], "force replaces the owner's registered keys"
        assert registry.key(old[owner]) is None
        assert stat.S_IMODE((keys_dir / f"{owner}.jwk").stat().st_mode) == 0o600
    assert registry.active_hub_key().kid == load_private_jwk(keys_dir, "hub")["kid"] != old["hub"]


def test_kept_key_missing_from_registry_is_registered_again(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    network, keys_dir, _ = initialised
    doc = read(network)
    doc["participants"]["RM1"]["jwks"]["keys"] = []
    write(network, doc)
    report = init_keys(network, keys_dir)
    assert report.registered == ("RM1",) and report.created == ()
    participant = load_registry(network).participant("RM1")
    assert participant is not None
    assert [k.kid for k in participant.keys] == [load_private_jwk(keys_dir, "RM1")["kid"]]


def test_new_key_without_force_retires_the_previous_active_key(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    network, keys_dir, _ = initialised
    old_kid = load_private_jwk(keys_dir, "RDE")["kid"]
    (keys_dir / "RDE.jwk").unlink()
    report = init_keys(network, keys_dir)
    assert report.created == ("RDE",)
    participant = load_registry(network).participant("RDE")
    assert participant is not None
    new_kid = load_private_jwk(keys_dir, "RDE")["kid"]
    assert [(k.kid, k.status) for k in participant.keys] == [(old_kid, "retiring"), (new_kid, "active")]


def test_load_private_jwk_explains_how_to_make_keys(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="handover keys init"):
        load_private_jwk(tmp_path, "RM1")
    with pytest.raises(ValueError, match="ODS"):
        load_private_jwk(tmp_path, "../etc/passwd")


# ---------------------------------------------------------------- the registry as the verifier's key source


def test_signature_verifies_against_the_initialised_registry(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    network, keys_dir, _ = initialised
    registry = load_registry(network)
    bundle = {"resourceType": "Bundle", "type": "message", "id": "b", "entry": []}
    signed = sign_bundle(bundle, load_private_jwk(keys_dir, "RC9"), "RC9")
    assert verify_bundle_signature(signed, registry.key).owner_ods == "RC9"
    receipt = sign_bundle(bundle, load_private_jwk(keys_dir, "hub"), "hub")
    assert verify_bundle_signature(receipt, registry.key).owner_ods == "hub"


def test_former_participants_keys_are_not_usable(network_copy: Path) -> None:
    private = generate_private_jwk()
    doc = read(network_copy)
    doc["participants"]["RN5"]["jwks"]["keys"] = [public_jwk(private)]
    write(network_copy, doc)
    registry = load_registry(network_copy)
    assert registry.key(private["kid"]) is None
    signed = sign_bundle({"resourceType": "Bundle", "type": "message"}, private, "RN5")
    with pytest.raises(HandoverError) as refusal:
        verify_bundle_signature(signed, registry.key)
    assert refusal.value.code == Code.UNKNOWN_KEY


def test_revoked_key_keeps_its_revocation_time(network_copy: Path) -> None:
    private = generate_private_jwk()
    doc = read(network_copy)
    doc["participants"]["RGP"]["jwks"]["keys"] = [
        {**public_jwk(private), "status": "revoked", "revoked_at": "2026-11-24T09:00:00Z"}
    ]
    write(network_copy, doc)
    entry = load_registry(network_copy).key(private["kid"])
    assert entry is not None and entry.status == "revoked"
    assert entry.revoked_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert entry.is_revoked_at(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    assert not entry.is_revoked_at(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))


# ---------------------------------------------------------------- strict loading: the refusal corpus


def _key(doc: dict[str, Any], ods: str = "RM1") -> dict[str, Any]:
    key: dict[str, Any] = doc["participants"][ods]["jwks"]["keys"][0]
    return key


def _with_key(doc: dict[str, Any], **over: Any) -> None:
    doc["participants"]["RM1"]["jwks"]["keys"] = [{**public_jwk(generate_private_jwk()), **over}]


def _ed25519_entry(**over: Any) -> dict[str, Any]:
    return {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", **over}


Edit = Callable[[dict[str, Any]], None]

REGISTRY_CORPUS: list[tuple[str, Edit, str]] = [
    ("kid_not_thumbprint_fail", lambda d: _key(d).update(kid="A" * 43), "thumbprint"),
    ("kid_missing_fail", lambda d: _key(d).pop("kid"), "thumbprint"),
    ("private_key_material_fail", lambda d: _with_key(d, d="AAAA"), "private"),
    ("alg_es384_fail", lambda d: _key(d).update(alg="ES384"), "alg"),
    ("alg_eddsa_fail", lambda d: _key(d).update(alg="EdDSA"), "alg"),
    ("alg_missing_fail", lambda d: _key(d).pop("alg"), "alg"),
    ("alg_ed25519_on_ec_key_fail", lambda d: _key(d).update(alg="Ed25519"), "kty"),
    ("status_unknown_fail", lambda d: _key(d).update(status="expired"), "status"),
    ("status_missing_fail", lambda d: _key(d).pop("status"), "status"),
    ("revoked_without_revoked_at_fail", lambda d: _key(d).update(status="revoked"), "revoked_at"),
    (
        "revoked_at_without_timezone_fail",
        lambda d: _key(d).update(status="revoked", revoked_at="2026-01-01T00:00:00"),
        "time zone",
    ),
    ("revoked_at_not_a_date_fail", lambda d: _key(d).update(status="revoked", revoked_at="yesterday"), "ISO-8601"),
    ("revoked_at_on_active_key_fail", lambda d: _key(d).update(revoked_at="2026-01-01T00:00:00Z"), "only allowed"),
    ("use_enc_fail", lambda d: _key(d).update(use="enc"), "use"),
    ("unknown_key_member_fail", lambda d: _key(d).update(x5u="https://example.org/x"), "unknown member"),
    (
        "point_not_on_curve_fail",
        lambda d: _key(d).update(y=_key(d)["x"], kid=thumbprint({**_key(d), "y": _key(d)["x"]})),
        "valid ES256",
    ),
    (
        "ed25519_with_y_fail",
        lambda d: d["participants"]["RM1"]["jwks"].update(
            keys=[{**_ed25519_entry(y="A" * 43), "kid": "x", "alg": "Ed25519", "status": "active"}]
        ),
        "32-byte",
    ),
    (
        "same_kid_for_two_owners_fail",
        lambda d: d["participants"]["RDE"]["jwks"].update(keys=[_key(d)]),
        "registered for both",
    ),
    ("ods_lower_case_fail", lambda d: d["participants"].update(rm2=d["participants"]["RN5"]), "ODS"),
    ("ods_too_long_fail", lambda d: d["participants"].update(ABCDEF=d["participants"]["RN5"]), "ODS"),
    ("ods_cyrillic_homoglyph_fail", lambda d: d["participants"].update({"R\u041c2": d["participants"]["RN5"]}), "ODS"),
    ("ods_hub_fail", lambda d: d["participants"].update(HUB=d["participants"]["RN5"]), "ODS"),
    ("role_former_fail", lambda d: d["participants"]["RN5"].update(role="former"), "role"),
    ("active_not_bool_fail", lambda d: d["participants"]["RN5"].update(active="no"), "active"),
    ("two_centres_fail", lambda d: d["participants"]["RM1"].update(role="centre"), "exactly one current centre"),
    ("no_current_centre_fail", lambda d: d["participants"]["RGT"].update(active=False), "exactly one current centre"),
    ("name_empty_fail", lambda d: d["participants"]["RM1"].update(name=" "), "name"),
    ("endpoint_not_http_fail", lambda d: d["participants"]["RM1"].update(endpoint="ftp://example.org"), "endpoint"),
    (
        "cert_fingerprint_upper_case_fail",
        lambda d: d["participants"]["RM1"].update(cert_fingerprints=["AB" * 32]),
        "fingerprint",
    ),
    (
        "unknown_participant_member_fail",
        lambda d: d["participants"]["RM1"].update(endpont="https://x"),
        "unknown member",
    ),
    ("unknown_top_level_member_fail", lambda d: d.update(participant={}), "unknown member"),
    ("participants_empty_fail", lambda d: d.update(participants={}), "participants"),
    ("jwks_keys_not_list_fail", lambda d: d["participants"]["RM1"]["jwks"].update(keys={}), "list"),
    (
        "two_active_hub_keys_fail",
        lambda d: d["hub"]["jwks"]["keys"].append(public_jwk(generate_private_jwk())),
        "at most one",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [pytest.param(e, m, id=n) for n, e, m in REGISTRY_CORPUS])
def test_load_registry_refuses(initialised: tuple[Path, Path, KeyInitReport], edit: Edit, message: str) -> None:
    network, _, _ = initialised
    doc = read(network)
    edit(doc)
    write(network, doc)
    with pytest.raises(RegistryError, match=message) as refusal:
        load_registry(network)
    assert str(network) in str(refusal.value)


def test_load_registry_refuses_kid_that_is_not_the_thumbprint(initialised: tuple[Path, Path, KeyInitReport]) -> None:
    network, _, _ = initialised
    doc = read(network)
    key = _key(doc)
    other = public_jwk(generate_private_jwk())
    key["kid"] = other["kid"]  # a real thumbprint, but of another key
    write(network, doc)
    with pytest.raises(RegistryError, match=r"participants\.RM1\.jwks\.keys\[0\]\.kid must be the RFC 7638 thumbprint"):
        load_registry(network)


def test_load_registry_refuses_unreadable_or_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"network": "a", "network": "b"}')
    with pytest.raises(RegistryError, match="duplicate"):
        load_registry(bad)
    bad.write_text("[]")
    with pytest.raises(RegistryError, match="JSON object"):
        load_registry(bad)


def test_init_keys_refuses_an_invalid_registry_without_writing_keys(network_copy: Path, tmp_path: Path) -> None:
    doc = read(network_copy)
    doc["participants"]["RM1"]["role"] = "former"
    write(network_copy, doc)
    with pytest.raises(RegistryError, match="role"):
        init_keys(network_copy, tmp_path / "private")
    assert not (tmp_path / "private").exists()


def test_registry_objects_are_immutable() -> None:
    registry = load_registry(DEFAULT_NETWORK)
    with pytest.raises(TypeError):
        registry.participants["XYZ"] = registry.centre()  # type: ignore[index]
    assert isinstance(registry_from_document(read(DEFAULT_NETWORK)), Registry)
