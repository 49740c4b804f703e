"""`handover keys init|show|rotate|revoke|rotate-kek` and `handover staff token`: the network's signing keys,
the key-encryption key and development staff tokens."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.console import Console

from service.cli.running import console, with_database
from service.config import Settings
from service.crypto.kek import KeyUnavailableError
from service.store import db


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys ...` and `staff token`."""
    keys = commands.add_parser("keys", help="network keys").add_subparsers(title="keys commands")
    init = keys.add_parser("init", help="make a dev ES256 key for every participant and the hub")
    init.add_argument("--force", action="store_true", help="replace existing private keys")
    init.set_defaults(run=_cmd_keys_init)
    show = keys.add_parser("show", help="list participants and their public keys, with key states")
    show.set_defaults(run=_cmd_keys_show)
    rotate = keys.add_parser(
        "rotate", help="new active key for ODS (or hub); the old one verifies only for the overlap"
    )
    rotate.add_argument("ods", help="ODS code of a current participant, or hub")
    rotate.add_argument(
        "--overlap-hours", type=float, default=25.0, help="how long the old key keeps verifying (default 25)"
    )
    rotate.set_defaults(run=_cmd_keys_rotate)
    revoke = keys.add_parser("revoke", help="refuse KID's signatures made from --at on; earlier ones stay valid")
    revoke.add_argument("ods", help="ODS code of the key's owner, or hub")
    revoke.add_argument("kid", help="the key's kid (see `handover keys show`); put -- before a kid starting with -")
    revoke.add_argument(
        "--at", required=True, type=_aware_datetime, help="ISO-8601 instant with a time zone, e.g. 2026-11-24T09:00:00Z"
    )
    revoke.set_defaults(run=_cmd_keys_revoke)
    _add_rotate_kek(keys)

    staff = commands.add_parser("staff", help="staff identity (development)").add_subparsers(title="staff commands")
    token = staff.add_parser("token", help="mint a development staff bearer token")
    token.add_argument("--user", required=True, help="the staff member's user name")
    token.add_argument("--role", required=True, choices=["governance", "ops"])
    token.add_argument("--minutes", type=int, default=60, help="lifetime (at most 12 hours)")
    token.set_defaults(run=_cmd_staff_token)


def _add_rotate_kek(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate_kek = keys.add_parser(
        "rotate-kek", help="new key-encryption key; re-wrap every stored data key under it (payloads unchanged)"
    )
    rotate_kek.add_argument(
        "--purge-retired",
        action="store_true",
        help="instead: re-wrap stragglers and delete retired KEKs nothing uses (run a minute after rotate-kek)",
    )
    rotate_kek.set_defaults(run=_cmd_keys_rotate_kek)


def _cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from service.crypto.kek import create_kek_file
    from service.identity.keystore import init_keys
    from service.identity.staff import ensure_dev_staff_key
    from service.pseudonyms import PSEUDONYM_KEY_FILE, Pseudonymiser

    report = init_keys(settings.network_path, settings.keys_dir, force=args.force)
    if ensure_dev_staff_key(settings.keys_dir):
        console.print("created  staff identity provider (development)")
    if not settings.kek_path.exists():
        console.print(f"created  key-encryption key {create_kek_file(settings.kek_path)} in {settings.kek_path}")
    if not (settings.keys_dir / PSEUDONYM_KEY_FILE).exists():
        Pseudonymiser.from_keys_dir(settings.keys_dir)  # made here, so a hub given read-only keys can start
        console.print(f"created  pseudonym key in {settings.keys_dir / PSEUDONYM_KEY_FILE}")
    for owner in report.created:
        console.print(f"created  {owner}")
    for owner in report.kept:
        console.print(f"kept     {owner} (use --force to replace)")
    return 0


def _cmd_staff_token(args: argparse.Namespace, settings: Settings) -> int:
    from service.identity.roles import StaffRole
    from service.identity.staff import ensure_dev_staff_key, mint_dev_staff_token

    if ensure_dev_staff_key(settings.keys_dir):
        console.print(f"made a development staff identity provider key in {settings.keys_dir}")
    print(mint_dev_staff_token(settings.keys_dir, args.user, StaffRole(args.role), minutes=args.minutes))
    return 0


def _cmd_keys_show(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    from service.identity.registry import load_registry
    from service.identity.signing import PublicKeyEntry

    now = datetime.now(UTC)

    def instant(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def cells(key: PublicKeyEntry) -> tuple[str, ...]:
        over = key.status == "retiring" and key.retire_after is not None and key.retire_after <= now
        status = f"{key.status} (overlap over)" if over else key.status
        return key.kid, key.alg, status, instant(key.retire_after), instant(key.revoked_at)

    registry = load_registry(settings.network_path)
    table = Table(title=f"Network registry {settings.network_path}")
    for column in ("owner", "name", "role", "kid", "alg", "status", "retire_after", "revoked_at"):
        table.add_column(column)
    for key in registry.hub_keys:
        table.add_row("hub", registry.hub_name, "hub", *cells(key))
    for participant in registry.participants.values():
        role = participant.role if participant.active else f"{participant.role} (former)"
        for key in participant.keys:
            table.add_row(participant.ods, participant.name, role, *cells(key))
        if not participant.keys:
            table.add_row(participant.ods, participant.name, role, "(none: run keys init)", "", "", "", "")
    Console().print(table)
    return 0


def _aware_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-11-24T09:00:00Z")
    return moment


def _cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from rich.markup import escape

    from service.identity.keystore import rotate_key

    try:
        overlap = timedelta(hours=args.overlap_hours)
        report = rotate_key(settings.network_path, settings.keys_dir, args.ods, overlap=overlap)
    except (ValueError, OverflowError) as err:  # KeyLifecycleError and RegistryError are ValueErrors
        console.print(f"[red]refused:[/] {escape(str(err))}")
        return 1
    console.print(f"{report.owner}: new active key {report.new_kid}")
    for kid in report.retired_kids:
        console.print(f"retiring {kid}: verifies signatures made before {report.retire_after:%Y-%m-%dT%H:%M:%SZ}")
    if report.archived_private_path is not None:
        console.print(f"previous private key kept at {report.archived_private_path}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print("send SIGHUP to the running service to load the registry change")
    return 0


def _cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from rich.markup import escape

    from service.identity.keystore import revoke_key

    try:
        report = revoke_key(settings.network_path, args.ods, args.kid, at=args.at)
    except ValueError as err:
        console.print(f"[red]refused:[/] {escape(str(err))}")
        return 1
    when = f"{report.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    console.print(f"{report.owner} {report.kid}: revoked from {when}" + ("" if report.changed else " (unchanged)"))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print("send SIGHUP to the running service to load the registry change")
    return 0


def _cmd_keys_rotate_kek(args: argparse.Namespace, settings: Settings) -> int:
    from service.crypto.kek import UnwrapError
    from service.crypto.rotation import purge_retired_keks, rotate_kek

    async def run(dsn: str) -> int:
        await db.migrate(dsn)
        pool = await db.create_pool(dsn, max_size=2)
        try:
            if args.purge_retired:
                purged = await purge_retired_keks(settings.kek_path, pool)
                console.print(f"active {purged.active_kek_id}; re-wrapped {purged.rewrapped} data key(s)")
                console.print(f"removed {', '.join(purged.removed_kek_ids) or 'no retired KEK'}")
                if purged.kept_kek_ids:
                    console.print(f"[yellow]kept (still in use):[/] {', '.join(purged.kept_kek_ids)}")
                return 0
            report = await rotate_kek(settings.kek_path, pool)
        except (KeyUnavailableError, UnwrapError) as err:
            console.print(f"[red]refused:[/] {err}")
            return 1
        finally:
            await pool.close()
        console.print(f"new active KEK {report.new_kek_id}; re-wrapped {report.rewrapped} data key(s)")
        console.print(
            f"retired {', '.join(report.retired_kek_ids)}: kept for unwrapping until "
            "`handover keys rotate-kek --purge-retired` (run it in a minute, once in-flight writes have committed)"
        )
        return 0

    return with_database(settings, run)
