"""Whether the hub can listen on HANDOVER_LISTEN, and why not, in words a person can act on.

`check_address` binds the address once, as the hub's own socket would (SO_REUSEADDR, so a predecessor's TIME_WAIT
connections do not count) but without SO_REUSEPORT: a port held by any other program, including another hub whose
workers share it through SO_REUSEPORT, is refused instead of silently shared. `serve` and `demo` call it before they
start anything; `explain` words the same refusal for an OSError raised by the bind itself (another program took
the port in between).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable


class AddressUnavailableError(Exception):
    """The hub cannot listen on the address it was given; the message says which and what to do."""


def explain(host: str, port: int, err: OSError, setting: str = "HANDOVER_LISTEN") -> str:
    """What to tell a person who could not bind host:port with `err`: which address, why, what to do. `setting` is
    how they chose the address: HANDOVER_LISTEN (host:port), or a command-line option such as `hl7 listen --port`
    (a port) or `--metrics` (host:port)."""
    if err.errno == errno.EADDRINUSE:
        why = "the address is already in use (another `handover serve` or `handover demo`, or another program)"
        advice = f"Stop whatever holds it, or choose another port with {_choice(setting, host, _next(port))}"
    elif err.errno == errno.EADDRNOTAVAIL:
        why = f"{host} is not an address of this machine"
        advice = f"Choose one of its addresses with {setting}, e.g. {_choice(setting, '127.0.0.1', port)}"
    elif err.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
        advice = f"Choose a port from 1024 up with {setting}, e.g. {_choice(setting, host, 8080)}"
    else:
        why = err.strerror or str(err)
        advice = f"Choose another address with {setting}"
    return f"Cannot listen on {host}:{port}: {why}. {advice}."


def _choice(setting: str, host: str, port: int) -> str:
    """How `setting` names host:port: `HANDOVER_LISTEN=h:p`, `--port p`, or `--option h:p`."""
    if setting == "--port":
        return f"--port {port}"
    return f"{setting} {host}:{port}" if setting.startswith("--") else f"{setting}={host}:{port}"


def _next(port: int) -> int:
    return port + 1 if 0 < port < 65535 else 8081


def check_address(host: str, port: int) -> None:
    """Raise AddressUnavailableError if a socket cannot be bound to host:port now (nothing is kept bound)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise AddressUnavailableError(
            f"Cannot listen on {host}:{port}: {host!r} is not a known host name ({err.strerror}). Choose another "
            "address with HANDOVER_LISTEN, e.g. HANDOVER_LISTEN=127.0.0.1:8080."
        ) from None
    for family, kind, protocol, _, address in infos:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as err:
                raise AddressUnavailableError(explain(host, port, err)) from None


def can_listen(host: str, port: int, say: Callable[[str], None]) -> bool:
    """True if host:port can be bound now; otherwise `say` why and what to do, and False."""
    try:
        check_address(host, port)
    except AddressUnavailableError as err:
        say(str(err))
        return False
    return True
