"""A push relay alone in its own process, for tests that kill it with SIGKILL (F3).

    python -m tests.delivery.relay_process DSN KEK_FILE KEYS_DIR ODS=ENDPOINT [ODS=ENDPOINT ...]

Real clock; a one-second lease so a killed relay's jobs come back quickly. Prints "relay running" once started.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from service.crypto.vault import open_vault
from service.delivery.hubmail import HubMail
from service.delivery.relay import Relay
from service.delivery.relay_settings import RelaySettings
from service.identity.keystore import load_private_jwk
from service.store import db
from service.terminology import load_code_system


async def main(dsn: str, kek_file: str, keys_dir: str, *endpoints: str) -> None:
    pool = await db.create_pool(dsn, max_size=4)
    vault = await open_vault(pool, Path(kek_file), create_if_missing=False)
    targets = dict(pair.split("=", 1) for pair in endpoints)
    relay = Relay(
        pool,
        HubMail(vault, load_private_jwk(Path(keys_dir), "hub"), load_code_system("handover-event").url),
        endpoints=lambda: targets,
        settings=RelaySettings(timeout_seconds=5.0, lease=timedelta(seconds=1), poll_seconds=0.05),
    )
    await relay.start()
    print("relay running", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
