"""What every `handover` command shares: the console (stderr), saying an error in words, and running a body on
the hub's database, HANDOVER_DATABASE_URL or the embedded cluster (started and stopped here if need be)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console

from service.config import Settings
from service.store import db
from service.store.embedded import EMBEDDED_PG_DIR_ENV, EmbeddedCluster, ensure_cluster, following_port
from service.store.startup import NoPrimaryError

console = Console(stderr=True)


def with_database(settings: Settings, body: Callable[[str], Coroutine[Any, Any, int]]) -> int:
    """Run `body(dsn)` on HANDOVER_DATABASE_URL, or on the embedded cluster (stopped again if we started it)."""
    cluster: EmbeddedCluster | None = None
    dsn = settings.database_url
    try:
        if dsn is None:
            cluster = ensure_cluster(settings.var_dir.resolve(), log=lambda line: console.print(f"[dim]{line}[/]"))
            dsn = cluster.dsn
            os.environ[EMBEDDED_PG_DIR_ENV] = str(cluster.data_dir.parent)  # for workers started from here
        if os.environ.get(EMBEDDED_PG_DIR_ENV):  # the embedded cluster may come back on another port
            db.follow_moves(dsn, following_port(dsn, Path(os.environ[EMBEDDED_PG_DIR_ENV])))
        return asyncio.run(body(dsn))
    except KeyboardInterrupt:
        return 130
    except (NoPrimaryError, db.SchemaRefusedError) as refused:  # the message says it all: no traceback
        console.print(f"[red]{refused}[/]")
        return 1
    finally:
        if cluster is not None and cluster.started_here:
            console.print("[dim]stopping the embedded PostgreSQL cluster[/]")
            cluster.stop()


def say_error(text: str) -> None:
    console.print(text, style="red", markup=False, soft_wrap=True)  # unwrapped: addresses and names stay whole
