"""Issue 26 item 3: `handover serve` or `handover demo` on an address that is taken says which address and how to
choose another (HANDOVER_LISTEN), and exits non-zero: no traceback, no worker restarted for ever, and no second
hub silently sharing the port with a first one through SO_REUSEPORT."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from service import listening
from tests.cli.test_serve_and_demo import env_for
from tests.support.hub import ROOT, Network, free_port
from tests.support.processes import HANDOVER


@pytest.fixture(params=["plain", "reuseport"])
def taken_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port another program listens on; `reuseport`: as a running multi-worker hub does (SO_REUSEPORT)."""
    port = free_port()
    with socket.socket() as squatter:
        if request.param == "reuseport":
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield port


def run(command: list[str], network: Network, port: int, database: str) -> subprocess.CompletedProcess[str]:
    env = env_for(network, port, HANDOVER_DATABASE_URL=database)
    try:
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{command} still running 30 s after its address was found taken: {err.stderr!r}")


def assert_said_clearly(result: subprocess.CompletedProcess[str], port: int) -> None:
    said = result.stdout + result.stderr
    assert result.returncode not in (0, None), said
    assert "Traceback" not in said, said
    assert f"127.0.0.1:{port}" in said and "in use" in said, said
    assert "HANDOVER_LISTEN" in said, "says how to choose another address"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_taken_port_says_which_and_how_to_choose_another(
    network: Network, database: str, taken_port: int, workers: str
) -> None:
    result = run([HANDOVER, "serve", "--workers", workers], network, taken_port, database)
    assert_said_clearly(result, taken_port)


@pytest.mark.parametrize("taken_port", ["plain"], indirect=True)
def test_demo_on_a_taken_port_says_which_and_how_to_choose_another(
    network: Network, database: str, taken_port: int
) -> None:
    result = run([HANDOVER, "demo", "--once"], network, taken_port, database)
    assert_said_clearly(result, taken_port)


def test_an_address_not_on_this_machine_is_said_so() -> None:
    said: list[str] = []
    assert not listening.can_listen("192.0.2.1", 8080, said.append)  # TEST-NET-1: never a local address
    assert said == [
        "Cannot listen on 192.0.2.1:8080: 192.0.2.1 is not an address of this machine. Choose one of its "
        "addresses with HANDOVER_LISTEN, e.g. HANDOVER_LISTEN=127.0.0.1:8080."
    ]
