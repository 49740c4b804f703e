"""`handover hl7 listen --as ODS --port N` as a real process: an EPR's REF^I12 is answered AA after the receipt,
its /metrics serves every metric deploy/prometheus/hl7-alerts.yml names, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from pathlib import Path

from tests.hl7 import samples
from tests.hl7.mllp import ack_code, send
from tests.ops.test_metrics_exposed import named_in_rules
from tests.support.hub import ROOT, RunningHub, free_port
from tests.support.processes import HANDOVER


async def test_the_listen_command_serves_mllp_until_sigterm(hub: RunningHub, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HANDOVER_NETWORK": str(hub.network.network_path),
        "HANDOVER_KEYS_DIR": str(hub.network.keys_dir),
    }
    metrics_port = free_port()
    args = ["hl7", "listen", "--as", "RM1", "--port", str(port), "--url", hub.base_url, "--queue", str(tmp_path)]
    args += ["--metrics", f"127.0.0.1:{metrics_port}"]
    proc = await asyncio.create_subprocess_exec(
        HANDOVER, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode().strip() == f"listening on 127.0.0.1:{port}"
        assert ack_code(await send(port, samples.referral(samples.nhs_number()))) == "AA"
        assert len(await hub.trust("RGT").inbox()) == 1
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip().endswith(f"{metrics_port}/metrics")
        async with hub.session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        named = named_in_rules("hl7-alerts.yml")  # every metric its alerting rules name is served by a real connector
        assert len(named) == 6
        for name in named:
            assert re.search(rf"^# TYPE {name} (counter|gauge)$", text, re.MULTILINE), name
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_taken_mllp_port_or_a_bad_endpoint_is_said_in_words_without_a_traceback(
    hub: RunningHub, tmp_path: Path
) -> None:
    """Issue 26 items 3 and 8: the connector's own ports get what `serve` gets, a sentence and a non-zero exit."""
    env = {
        **os.environ,
        "HANDOVER_NETWORK": str(hub.network.network_path),
        "HANDOVER_KEYS_DIR": str(hub.network.keys_dir),
    }
    base = ["hl7", "listen", "--as", "RM1", "--url", hub.base_url, "--queue", str(tmp_path)]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        for extra, option in (
            (["--port", str(taken)], "--port"),
            (["--port", str(free_port()), "--metrics", f"127.0.0.1:{taken}"], "--metrics"),
        ):
            proc = await asyncio.create_subprocess_exec(
                HANDOVER,
                *base,
                *extra,
                env=env,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            words = err.decode()
            assert proc.returncode == 1, words
            assert f"Cannot listen on 127.0.0.1:{taken}: the address is already in use" in words
            assert option in words and "Traceback" not in words
    proc = await asyncio.create_subprocess_exec(
        HANDOVER, *base, "--epr", "no-port-here", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "'no-port-here' is not HOST:PORT" in err.decode() and "Traceback" not in err.decode()
