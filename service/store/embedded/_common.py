"""Constants and the error type shared by the embedded cluster's modules."""

from __future__ import annotations

import re
from typing import TypeVar

T = TypeVar("T")

DATABASE = "handover"
SUPERUSER = "handover"
SYSTEM_CLUSTERS_ROOT = "/var/lib/handover/clusters"
SERVER_USER = "postgres"  # the system user the server runs as when we are root
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 60

_REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
_CONF_BEGIN = "# >>> handover embedded settings: managed by service/store/embedded.py, rewritten on every start"
_CONF_END = "# <<< handover embedded settings"
_CONF_BLOCK = re.compile(rf"^{re.escape(_CONF_BEGIN)}$.*?^{re.escape(_CONF_END)}$\n?", re.MULTILINE | re.DOTALL)
_BIND_FAILURE = re.compile(r"could not bind|could not create any TCP/IP sockets|address already in use", re.I)
_BAD_LOCALE = re.compile(r"invalid locale|locale .*not (supported|found|available)", re.I)


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be set up, started or stopped; the message says why and what to do."""
