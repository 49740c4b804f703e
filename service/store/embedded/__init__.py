"""The private PostgreSQL cluster under `<var>/pg`, used when HANDOVER_DATABASE_URL is not set.

This module owns that cluster's files and lifecycle, nothing else (schema and SQL live in the other modules):

* `<var>/pg/data/`      PGDATA: created by initdb on first use, kept across restarts;
* `<var>/pg/port`       the TCP port on 127.0.0.1, picked at init and re-picked (and rewritten) if taken later;
* `<var>/pg/password`   the random password of the `handover` superuser (mode 0600);
* `<var>/pg/server.log` the server's log; its tail is attached to every `EmbeddedPostgresError`;
* `<var>/pg/run/`       the unix-socket directory (sockets are disabled when that path would be too long).

`ensure_cluster` initialises the cluster if needed, starts it (or reuses a server already running on the same
data directory), waits until it accepts connections, makes sure the `handover` database exists and returns an
`EmbeddedCluster` holding the DSN. `EmbeddedCluster.stop` stops the server only if this process started it.

PostgreSQL refuses to run as root, so when we are root the `<var>/pg` tree is chowned to the `postgres` system
user and every PostgreSQL program (initdb, pg_ctl, pg_isready, psql) runs as that user. No permission is changed
outside `<var>/pg`: if `postgres` cannot traverse to it (a root checkout in a mode-700 home), the cluster's `pg/` goes
to a directory of its own under HANDOVER_EMBEDDED_ROOT (default /var/lib/handover/clusters; `<var>/pg-location`
names it), and `locate_cluster(var_dir)` says where a var directory's cluster is, in either layout.

Readiness is checked with `pg_isready` (and the database created with `psql`) from the same bindir; without those
programs an asyncpg connection is made on a throwaway thread with its own event loop. Nothing calls
`asyncio.run` on the caller's thread, so `ensure_cluster` may be called while an event loop is running (it then
blocks that loop for the second or two a start takes; `asyncio.to_thread` avoids that).

With no PostgreSQL binaries at all, the optional `pgserver` package (bundling PostgreSQL 16) is imported instead;
its cluster lives in `<var>/pg/pgserver`, trusts local connections and is reached over a unix socket only.
"""

from service.store.embedded._common import EmbeddedPostgresError
from service.store.embedded.cluster import EMBEDDED_PG_DIR_ENV, EmbeddedCluster, following_port, locate_cluster
from service.store.embedded.programs import find_postgres_bindir
from service.store.embedded.start import ensure_cluster

__all__ = [
    "EMBEDDED_PG_DIR_ENV",
    "EmbeddedCluster",
    "EmbeddedPostgresError",
    "ensure_cluster",
    "find_postgres_bindir",
    "following_port",
    "locate_cluster",
]
