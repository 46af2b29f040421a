"""Which instance of a running system holds each leader lock.

Leader-elected work (the relay, the read models, the chain's lander) runs while
its process holds a PostgreSQL session advisory lock. ``pg_locks`` names the
session holding it and ``pg_stat_activity`` its client port; ``/proc`` names the
process whose socket has that port as its local one.
"""

import contextlib
from pathlib import Path

import psycopg

from shared.postgres.leadership import lock_key
from tools.system import System

# A bigint advisory lock shows in pg_locks as classid = high 32 bits, objid = low
# 32 bits, objsubid = 1 (two int4 keys would have objsubid = 2).
_ADVISORY_HOLDERS = """
SELECT l.pid, a.client_port
  FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND ((l.classid::int8 << 32) | l.objid::int8) = %s
"""


def lock_holders(system: System, key: int) -> list[tuple[int, int]]:
    """(backend pid, client port) of every session holding advisory lock ``key``."""
    with psycopg.connect(system.env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(_ADVISORY_HOLDERS, (key,)).fetchall()


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _inodes_of_local_port(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port:
                    inodes.add(int(fields[9]))
    return inodes


def instance_of_client_port(system: System, client_port: int | None) -> str | None:
    """The instance whose TCP socket has ``client_port`` as its local port."""
    if client_port is None or client_port < 0:
        # PostgreSQL shows another role's sessions without their client port.
        raise AssertionError(
            "no client port for a leader's session: DATABASE_URL must use TCP, as"
            " a superuser or a member of pg_read_all_stats"
        )
    inodes = _inodes_of_local_port(client_port)
    for name, process in system.processes.items():
        if process.poll() is None and inodes & _socket_inodes(process.pid):
            return name
    return None


def lock_holder(system: System, lock: str) -> str | None:
    """The instance holding the leader lock named ``lock``, if exactly one does."""
    holders = lock_holders(system, lock_key(lock))
    if len(holders) != 1:
        return None
    return instance_of_client_port(system, holders[0][1])
