"""Django's PostgreSQL engine with the platform's pool behaviour (see the package
docstring): bounded waits that tell an outage from a full pool, and a thread's
connection given back to the pool if the thread ends still holding it."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db.backends.postgresql import base

from . import GATE, PROBE_CONNECT_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if self.pool is None:
            return super().get_new_connection(conn_params)

        def probe() -> None:
            # Outside the pool: its own name in pg_stat_activity, so that the pool's
            # bound can be read there (the probe is one short-lived connection at most).
            name = f"{conn_params.get('application_name') or 'visionaire'} probe"[:63]
            params = {**conn_params, "application_name": name}
            params["connect_timeout"] = PROBE_CONNECT_TIMEOUT_SECONDS
            self.Database.connect(**params).close()

        return GATE.connect(
            lambda: super(DatabaseWrapper, self).get_new_connection(conn_params),
            probe,
            wait=settings.DB_POOL_TIMEOUT_SECONDS,
        )

    def __del__(self):
        # A thread that ends without closing its connection would take a pool slot
        # with it for good (the pool cannot see threads end); its wrapper, collected
        # with the thread's locals, hands the connection back instead.
        conn = self.__dict__.get("connection")
        pool = getattr(conn, "_pool", None)
        if pool is not None and not sys.is_finalizing():  # at exit the pool is going away too
            try:
                pool.putconn(conn)
                logger.warning("a thread ended holding a database connection; it was returned to the pool")
            except Exception:  # noqa: BLE001 (interpreter shutdown, pool closed: nothing to give back to)
                pass
