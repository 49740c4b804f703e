"""F3: the relay is killed (SIGKILL, a real process) after the recipient answered 2xx but before the delivery was
marked. The lease expires, another relay redelivers, the recipient answers 409 (it already has the message) and
the delivery is marked done: the business layer saw the message once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.delivery.delivery_fixtures import outbox_world, recipients
from tests.support.faultproxy import FaultProxy
from tests.support.hub import ROOT, Network


def via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, f"{netloc[0]}@{host}" if len(netloc) == 2 else host, parts.path, "", ""))


async def test_f3_relay_killed_after_the_recipients_2xx_redelivers_and_409_marks_it_delivered(
    database: str, network: Network, tmp_path: Path
) -> None:
    parts = urlsplit(database)
    async with (
        outbox_world(database, network, tmp_path) as world,
        recipients(network, "RGT") as (rgt,),
        FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as db_proxy,
    ):
        sent = await world.accept()
        rgt.hold_after_processing = asyncio.Event()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = [via(database, db_proxy.port), str(world.kek_file), str(network.keys_dir), f"RGT={rgt.endpoint}"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.delivery.relay_process", *args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        try:
            await asyncio.wait_for(rgt.processed.wait(), timeout=20)
            db_proxy.hang()  # from now on the relay cannot reach the database: it cannot mark the delivery
            rgt.hold_after_processing.set()  # ... and the recipient answers 200
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(proc.wait(), timeout=10) == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        db_proxy.reset()  # drop whatever the dead relay had sent into the hung proxy: it never reaches the database
        db_proxy.heal()
        assert [r.status for r in rgt.requests] == [200]
        row = await world.delivery(sent.message_id)
        assert (row["state"], row["attempts"]) == ("pending", 1), "the 2xx was never recorded"

        rgt.hold_after_processing = None
        relay = world.relay({"RGT": rgt.endpoint})
        assert await relay.run_once() == 0, "still leased by the dead relay"
        world.clock.advance(timedelta(minutes=5))  # past the dead relay's lease
        assert await relay.run_once() == 1
        row = await world.delivery(sent.message_id)
        assert (row["state"], row["channel"], row["attempts"], row["last_status"]) == ("delivered", "push", 2, 409)
        assert [r.status for r in rgt.requests] == [200, 409]
        assert rgt.requests[0].request_id == rgt.requests[1].request_id, "the same X-Request-ID each time"
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={sent.bundle_identifier})
