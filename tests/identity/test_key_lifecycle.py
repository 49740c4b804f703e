"""Specification of the key lifecycle (issue 4; RELIABILITY-SECURITY.md item 4 and S12): `rotate_key` and
`revoke_key` in service/identity/keystore.py, ``retire_after`` in the registry, `PublicKeyEntry.verifies_at`, and hot
reload through `RegistryHolder`. Everything runs on copies in temporary directories; nothing is written
under keys/."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from service.identity.keystore import (
    DEFAULT_OVERLAP,
    KeyLifecycleError,
    generate_private_jwk,
    init_keys,
    load_private_jwk,
    public_jwk,
    revoke_key,
    rotate_key,
)
from service.identity.registry import RegistryError, RegistryHolder, RegistryReader, load_registry
from service.identity.signing import PublicKeyEntry, sign_bundle, verify_bundle_signature

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NETWORK = ROOT / "keys" / "network.json"
T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
BUNDLE: dict[str, Any] = {"resourceType": "Bundle", "type": "message", "id": "lifecycle", "entry": []}


@pytest.fixture
def network(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the default network with exactly one fresh active key per owner, and its private keys."""
    path = tmp_path / "network.json"
    shutil.copy(DEFAULT_NETWORK, path)
    keys_dir = tmp_path / "private"
    init_keys(path, keys_dir, force=True)
    return path, keys_dir


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def owner_keys(path: Path, owner: str) -> list[tuple[str, str]]:
    registry = load_registry(path)
    if owner == "hub":
        return [(k.kid, k.status) for k in registry.hub_keys]
    participant = registry.participants[owner]
    return [(k.kid, k.status) for k in participant.keys]


def entry(path: Path, kid: str) -> PublicKeyEntry:
    found = load_registry(path).key(kid)
    assert found is not None
    return found


def snapshot(network_path: Path, keys_dir: Path) -> tuple[bytes, dict[str, bytes]]:
    return network_path.read_bytes(), {p.name: p.read_bytes() for p in keys_dir.iterdir()}


# ---------------------------------------------------------------- rotation


def test_rotation_makes_a_new_active_key_and_retires_the_old_one(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    old = load_private_jwk(keys_dir, "RM1")
    others_before = {ods: owner_keys(path, ods) for ods in ("hub", "RGT", "RDE")}

    report = rotate_key(path, keys_dir, "RM1", now=T0)

    new = load_private_jwk(keys_dir, "RM1")
    assert new["kid"] == report.new_kid != old["kid"]
    assert (new["kty"], new["crv"], new["alg"]) == ("EC", "P-256", "ES256")
    assert report.owner == "RM1" and report.retired_kids == (old["kid"],)
    assert report.retire_after == T0 + DEFAULT_OVERLAP == T0 + timedelta(hours=25)
    assert owner_keys(path, "RM1") == [(old["kid"], "retiring"), (new["kid"], "active")]
    retiring = entry(path, old["kid"])
    assert retiring.retire_after == T0 + timedelta(hours=25) and retiring.revoked_at is None
    assert entry(path, new["kid"]).retire_after is None
    assert {ods: owner_keys(path, ods) for ods in others_before} == others_before, "only RM1's keys change"
    assert report.warnings == ()


def test_rotation_keeps_the_old_private_key_and_writes_0600_files(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    old_kid = load_private_jwk(keys_dir, "RDE")["kid"]
    old_file = (keys_dir / "RDE.jwk").read_bytes()

    report = rotate_key(path, keys_dir, "RDE", now=T0)

    archived = keys_dir / f"RDE.{old_kid}.retired.jwk"
    assert report.archived_private_path == archived
    assert report.private_key_path == keys_dir / "RDE.jwk"
    assert archived.read_bytes() == old_file, "nothing is lost: the old private key is kept byte for byte"
    assert stat.S_IMODE(archived.stat().st_mode) == 0o600
    assert stat.S_IMODE((keys_dir / "RDE.jwk").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.rglob("*.tmp")] == []


def test_rotation_keeps_the_registry_file_format(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    before = read(path)
    rotate_key(path, keys_dir, "RGN", now=T0)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "\n  " in text and '"d":' not in text
    doc = read(path)
    assert doc["description"] == before["description"]
    assert list(doc["participants"]) == list(before["participants"])
    assert doc["participants"]["RN5"] == before["participants"]["RN5"]
    retiring, active = doc["participants"]["RGN"]["jwks"]["keys"]
    assert list(retiring) == ["kid", "kty", "crv", "x", "y", "alg", "use", "status", "retire_after"]
    assert retiring["retire_after"] == "2026-11-25T10:00:00Z"
    assert list(active) == ["kid", "kty", "crv", "x", "y", "alg", "use", "status"]


def test_rotating_the_hub_key_keeps_one_active_hub_key(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    old_kid = load_private_jwk(keys_dir, "hub")["kid"]
    report = rotate_key(path, keys_dir, "hub", overlap=timedelta(days=2), now=T0)
    registry = load_registry(path)
    assert registry.active_hub_key().kid == report.new_kid == load_private_jwk(keys_dir, "hub")["kid"]
    retired = registry.hub_key(old_kid)
    assert retired is not None and retired.status == "retiring" and retired.retire_after == T0 + timedelta(days=2)
    assert any("restart" in w for w in report.warnings)


def test_rotating_twice_leaves_earlier_retiring_keys_alone(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    first = load_private_jwk(keys_dir, "RC9")["kid"]
    second = rotate_key(path, keys_dir, "RC9", now=T0).new_kid
    third = rotate_key(path, keys_dir, "RC9", now=T0 + timedelta(hours=1)).new_kid
    assert owner_keys(path, "RC9") == [(first, "retiring"), (second, "retiring"), (third, "active")]
    assert entry(path, first).retire_after == T0 + timedelta(hours=25)
    assert entry(path, second).retire_after == T0 + timedelta(hours=26)
    assert {p.name for p in keys_dir.glob("RC9.*.retired.jwk")} == {
        f"RC9.{first}.retired.jwk",
        f"RC9.{second}.retired.jwk",
    }


def test_rotation_with_a_short_overlap_warns(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    report = rotate_key(path, keys_dir, "RGP", overlap=timedelta(hours=1), now=T0)
    assert any("maximum message age" in w for w in report.warnings)
    assert report.retire_after == T0 + timedelta(hours=1)


def test_rotation_without_a_private_key_on_disk_archives_nothing(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    old_kid = load_private_jwk(keys_dir, "RCX")["kid"]
    (keys_dir / "RCX.jwk").unlink()  # e.g. the trust holds its own private key
    report = rotate_key(path, keys_dir, "RCX", now=T0)
    assert report.archived_private_path is None
    assert owner_keys(path, "RCX") == [(old_kid, "retiring"), (report.new_kid, "active")]


@pytest.mark.parametrize(
    ("owner", "kwargs", "message"),
    [
        pytest.param("XYZ", {}, "not a participant", id="unknown_owner"),
        pytest.param("RN5", {}, "former participant", id="former_participant"),
        pytest.param("RM1", {"now": datetime(2026, 11, 24, 9, 0)}, "timezone-aware", id="naive_now"),
        pytest.param("RM1", {"overlap": timedelta(hours=-1)}, "negative", id="negative_overlap"),
    ],
)
def test_rotation_refusals_write_nothing(
    network: tuple[Path, Path], owner: str, kwargs: dict[str, Any], message: str
) -> None:
    path, keys_dir = network
    before = snapshot(path, keys_dir)
    with pytest.raises(KeyLifecycleError, match=message):
        rotate_key(path, keys_dir, owner, **kwargs)
    assert snapshot(path, keys_dir) == before


# ---------------------------------------------------------------- retiring keys verify only before retire_after


def test_s12_retired_key_verifies_before_retire_after_and_not_after(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    old_private = load_private_jwk(keys_dir, "RM1")
    report = rotate_key(path, keys_dir, "RM1", now=T0)
    registry = load_registry(path)

    for signed_at, verifies in [
        (T0 - timedelta(hours=1), True),  # signed before the rotation, delivered during the overlap
        (T0 + timedelta(hours=24, minutes=59, seconds=59), True),
        (report.retire_after, False),
        (report.retire_after + timedelta(hours=1), False),
    ]:
        signed = sign_bundle(BUNDLE, old_private, "RM1", when=signed_at)
        checked = verify_bundle_signature(signed, registry.key)  # the cryptography still holds
        assert checked.kid == old_private["kid"] and checked.owner_ods == "RM1"
        assert checked.key is not None and checked.key.status == "retiring"
        assert checked.key.verifies_at(checked.signed_at) is verifies, signed_at

    retiring = registry.key(old_private["kid"])
    assert retiring is not None
    assert not retiring.verifies_at(None), "a retiring key needs a known signing time"
    assert not retiring.is_revoked_at(T0 + timedelta(days=9)), "retiring is not revoked"


def test_s12_after_rotation_the_owner_signs_with_the_new_key_only(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    report = rotate_key(path, keys_dir, "RGR", now=T0)
    registry = load_registry(path)
    signer = load_private_jwk(keys_dir, "RGR")
    assert signer["kid"] == report.new_kid, "the retiring key is never the one used to sign"
    checked = verify_bundle_signature(sign_bundle(BUNDLE, signer, "RGR", when=T0 + timedelta(days=30)), registry.key)
    assert checked.key is not None and checked.key.status == "active"
    assert checked.key.verifies_at(checked.signed_at) and checked.key.verifies_at(None)


def test_verifies_at_for_each_state() -> None:
    public = public_jwk(generate_private_jwk())

    def key(status: str, revoked_at: datetime | None = None, retire_after: datetime | None = None) -> PublicKeyEntry:
        return PublicKeyEntry(public["kid"], "ES256", "RM1", status, revoked_at, public, retire_after=retire_after)

    before, at, after = T0 - timedelta(seconds=1), T0, T0 + timedelta(seconds=1)
    assert all(key("active").verifies_at(m) for m in (None, before, at, after))
    assert [key("retiring", retire_after=T0).verifies_at(m) for m in (None, before, at, after)] == [
        False,
        True,
        False,
        False,
    ]
    assert key("retiring").verifies_at(after), "retiring without retire_after: an open-ended overlap"
    assert [key("revoked", revoked_at=T0).verifies_at(m) for m in (None, before, at, after)] == [
        False,
        True,
        False,
        False,
    ]
    assert key("revoked").verifies_at(before) is False, "revoked without revoked_at verifies nothing"
    retired_then_revoked = key("revoked", revoked_at=T0 + timedelta(days=1), retire_after=T0)
    assert retired_then_revoked.verifies_at(before) and not retired_then_revoked.verifies_at(after)
    assert not key("expired").verifies_at(before), "an unknown status never verifies"
    assert key("revoked", revoked_at=T0).is_revoked_at(at) and not key("revoked", revoked_at=T0).is_revoked_at(before)


# ---------------------------------------------------------------- revocation (S12)


def test_s12_signed_before_revocation_verifies_and_after_does_not(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    private = load_private_jwk(keys_dir, "RGP")
    report = revoke_key(path, "RGP", private["kid"], at=T0)
    assert report.revoked_at == T0 and report.previous_status == "active" and report.changed
    assert read(path)["participants"]["RGP"]["jwks"]["keys"][0]["revoked_at"] == "2026-11-24T09:00:00Z"
    registry = load_registry(path)

    for signed_at, verifies in [
        (T0 - timedelta(days=3), True),  # accepted before revocation: still provable
        (T0 - timedelta(seconds=1), True),
        (T0, False),
        (T0 + timedelta(minutes=1), False),
    ]:
        checked = verify_bundle_signature(sign_bundle(BUNDLE, private, "RGP", when=signed_at), registry.key)
        assert checked.key is not None and checked.key.status == "revoked"
        assert checked.key.verifies_at(checked.signed_at) is verifies, signed_at
        assert checked.key.is_revoked_at(checked.signed_at) is not verifies


def test_s12_revoking_the_only_active_key_is_allowed_with_a_warning(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    kid = load_private_jwk(keys_dir, "RM1")["kid"]
    report = revoke_key(path, "RM1", kid, at=T0)
    assert owner_keys(path, "RM1") == [(kid, "revoked")]
    assert any("no active key" in w and "keys rotate RM1" in w for w in report.warnings)


def test_revoking_a_retired_key_leaves_the_active_one_and_keeps_retire_after(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    old_kid = load_private_jwk(keys_dir, "RDE")["kid"]
    rotation = rotate_key(path, keys_dir, "RDE", now=T0)
    report = revoke_key(path, "RDE", old_kid, at=T0 + timedelta(days=3))
    assert report.previous_status == "retiring"
    assert not any("no active key" in w for w in report.warnings)
    revoked = entry(path, old_kid)
    assert revoked.status == "revoked" and revoked.retire_after == rotation.retire_after
    assert revoked.verifies_at(T0) and not revoked.verifies_at(rotation.retire_after + timedelta(hours=1))
    assert owner_keys(path, "RDE") == [(old_kid, "revoked"), (rotation.new_kid, "active")]


def test_revocation_time_is_stored_in_utc(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    kid = load_private_jwk(keys_dir, "RGN")["kid"]
    at = datetime(2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    report = revoke_key(path, "RGN", kid, at=at)
    assert report.revoked_at == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    assert read(path)["participants"]["RGN"]["jwks"]["keys"][0]["revoked_at"] == "2026-11-24T09:30:00Z"


def test_a_revocation_can_only_move_earlier(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    kid = load_private_jwk(keys_dir, "RC9")["kid"]
    revoke_key(path, "RC9", kid, at=T0)
    unchanged = path.read_bytes()
    again = revoke_key(path, "RC9", kid, at=T0)
    assert not again.changed and path.read_bytes() == unchanged
    with pytest.raises(KeyLifecycleError, match="only be moved earlier"):
        revoke_key(path, "RC9", kid, at=T0 + timedelta(hours=1))
    assert path.read_bytes() == unchanged
    earlier = revoke_key(path, "RC9", kid, at=T0 - timedelta(hours=1))
    assert earlier.changed and entry(path, kid).revoked_at == T0 - timedelta(hours=1)


def test_a_revocation_in_the_future_is_flagged(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    kid = load_private_jwk(keys_dir, "RCX")["kid"]
    report = revoke_key(path, "RCX", kid, at=datetime.now(UTC) + timedelta(days=1))
    assert any("in the future" in w for w in report.warnings)


def test_revoke_refuses_naive_datetimes_unknown_kids_and_owners(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    rm1 = load_private_jwk(keys_dir, "RM1")["kid"]
    rgt = load_private_jwk(keys_dir, "RGT")["kid"]
    before = snapshot(path, keys_dir)
    with pytest.raises(KeyLifecycleError, match="timezone-aware"):
        revoke_key(path, "RM1", rm1, at=datetime(2026, 11, 24, 9, 0))
    with pytest.raises(KeyLifecycleError, match="no registered key"):
        revoke_key(path, "RM1", "A" * 43, at=T0)
    with pytest.raises(KeyLifecycleError, match="it is a key of RGT"):
        revoke_key(path, "RM1", rgt, at=T0)
    with pytest.raises(KeyLifecycleError, match="neither the hub nor a participant"):
        revoke_key(path, "XYZ", rm1, at=T0)
    assert snapshot(path, keys_dir) == before


# ---------------------------------------------------------------- retire_after in the registry file


@pytest.mark.parametrize(
    ("status", "retire_after", "message"),
    [
        pytest.param("active", "2026-11-25T09:00:00Z", "only allowed when status is retiring", id="on_active_key"),
        pytest.param("retiring", "2026-11-25T09:00:00", "time zone", id="without_time_zone"),
        pytest.param("retiring", "tomorrow", "ISO-8601", id="not_a_date"),
        pytest.param("retiring", 1795000000, "ISO-8601", id="a_number"),
    ],
)
def test_registry_refuses_bad_retire_after(
    network: tuple[Path, Path], status: str, retire_after: object, message: str
) -> None:
    path, _ = network
    doc = read(path)
    doc["participants"]["RM1"]["jwks"]["keys"][0].update(status=status, retire_after=retire_after)
    write(path, doc)
    with pytest.raises(RegistryError, match=message) as refusal:
        load_registry(path)
    assert "participants.RM1.jwks.keys[0].retire_after" in str(refusal.value)


# ---------------------------------------------------------------- hot reload


def test_s12_holder_reload_picks_up_a_rotated_key(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    holder = RegistryHolder.from_file(path)
    lookup = holder.key  # what the service hands to the verifier once, at start
    old_kid = load_private_jwk(keys_dir, "RM1")["kid"]
    report = rotate_key(path, keys_dir, "RM1", now=T0)
    signed = sign_bundle(BUNDLE, load_private_jwk(keys_dir, "RM1"), "RM1", when=T0)
    assert lookup(report.new_kid) is None, "not before the reload"

    result = holder.reload(path)

    assert result.ok and result.error is None
    assert result.added == (report.new_kid,) and result.changed == (old_kid,) and result.removed == ()
    assert report.new_kid in result.describe()
    checked = verify_bundle_signature(signed, lookup)
    assert checked.key is not None and checked.key.status == "active" and checked.owner_ods == "RM1"
    retiring = lookup(old_kid)
    assert retiring is not None and retiring.status == "retiring"


def test_s12_holder_reload_picks_up_a_revocation(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    holder = RegistryHolder.from_file(path)
    private = load_private_jwk(keys_dir, "RGT")
    revoke_key(path, "RGT", private["kid"], at=T0)
    result = holder.reload(path)
    assert result.changed == (private["kid"],)
    checked = verify_bundle_signature(sign_bundle(BUNDLE, private, "RGT", when=T0), holder.key)
    assert checked.key is not None and not checked.key.verifies_at(checked.signed_at)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(lambda p: p.write_text('{"network": "east-anglia', encoding="utf-8"), "not valid JSON", id="cut"),
        pytest.param(lambda p: p.write_bytes(b"\xff\xfe{}"), "cannot read", id="not_utf8"),
        pytest.param(lambda p: p.unlink(), "cannot read", id="missing"),
        pytest.param(
            lambda p: write(p, {**read(p), "participants": {**read(p)["participants"], "rm1": {}}}),
            "ODS",
            id="breaks_a_rule",
        ),
    ],
)
def test_holder_reload_of_a_bad_file_keeps_the_old_registry(
    network: tuple[Path, Path], damage: Any, message: str
) -> None:
    path, keys_dir = network
    holder = RegistryHolder.from_file(path)
    previous = holder.current
    kid = load_private_jwk(keys_dir, "RM1")["kid"]
    damage(path)

    result = holder.reload(path)

    assert not result.ok and result.error is not None
    assert message in result.error and str(path) in result.error
    assert "NOT reloaded" in result.describe()
    assert holder.current is previous, "the previous registry stays in service, whole"
    assert holder.key(kid) is previous.key(kid) is not None


def test_holder_reload_after_a_bad_file_then_a_good_one(network: tuple[Path, Path], tmp_path: Path) -> None:
    path, keys_dir = network
    holder = RegistryHolder.from_file(path)
    good = path.read_bytes()
    path.write_text("{", encoding="utf-8")
    assert not holder.reload(path).ok
    path.write_bytes(good)
    report = rotate_key(path, keys_dir, "RGR", now=T0)
    assert holder.reload(path).ok and holder.key(report.new_kid) is not None


def test_holder_passes_through_to_the_current_registry(network: tuple[Path, Path]) -> None:
    path, keys_dir = network
    holder = RegistryHolder.from_file(path)
    reader: RegistryReader = holder  # usable wherever the service only reads the registry
    assert reader.is_participant("RM1") and not reader.is_participant("RN5") and not reader.is_participant("XYZ")
    rgt = reader.participant("RGT")
    assert rgt is not None and rgt.role == "centre"
    hub_kid = load_private_jwk(keys_dir, "hub")["kid"]
    assert reader.hub_key(hub_kid) == holder.current.active_hub_key()
    assert reader.hub_key(load_private_jwk(keys_dir, "RM1")["kid"]) is None
    with pytest.raises(RegistryError, match="cannot read"):
        RegistryHolder.from_file(path.parent / "missing.json")
