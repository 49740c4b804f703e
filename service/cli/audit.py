"""`handover audit verify|export` and `handover db migrate`: the audit log checked offline or exported, and the
database schema brought up to date."""

from __future__ import annotations

import argparse
import asyncio

from service.auditlog import export as audit_export
from service.auditlog import verify_cli
from service.cli.running import console, with_database
from service.config import Settings
from service.store import db


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `audit verify` and `audit export`."""
    audit = commands.add_parser("audit", help="the tamper-evident audit log").add_subparsers(title="audit commands")
    audit_verify = audit.add_parser("verify", help="check the audit log offline: leaves, roots, checkpoints, receipts")
    verify_cli.add_verify_arguments(audit_verify)
    audit_verify.set_defaults(run=_cmd_audit_verify)
    audit_export_cmd = audit.add_parser("export", help="write the audit log to DIR: leaves, checkpoints, AuditEvents")
    audit_export.add_export_arguments(audit_export_cmd)
    audit_export_cmd.set_defaults(run=_cmd_audit_export)


def add_database_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `db migrate`."""
    database = commands.add_parser("db", help="database").add_subparsers(title="db commands")
    migrate = database.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(run=_cmd_db_migrate)


def _cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.export is not None or args.database_url:
        return asyncio.run(verify_cli.verify_command(args, args.database_url, console, network=settings.network_path))
    return with_database(
        settings, lambda dsn: verify_cli.verify_command(args, dsn, console, network=settings.network_path)
    )


def _cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.database_url:
        return asyncio.run(audit_export.export_command(args, args.database_url, console))
    return with_database(settings, lambda dsn: audit_export.export_command(args, dsn, console))


def _cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:

    async def migrate(dsn: str) -> int:
        applied = await db.migrate(dsn)
        console.print(f"applied {len(applied)} migration(s): {', '.join(m.name for m in applied) or 'none pending'}")
        return 0

    return with_database(settings, migrate)
