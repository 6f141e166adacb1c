"""`--stat`: a line of server statistics every -i seconds (default 1), as
redis-cli 7.0.15 prints it.

Each INFO reply gives: the keys of db0..db19 added up, used memory in
redis-cli's human units, connected and blocked clients, commands processed
(with the increase since the last line), connections received, and the
child process at work (SAVE, AOF, SAVE+AOF or LOAD).  The two header lines
come back every 20 rows.  It runs until Ctrl-C.  A lost connection is
opened again, with `Reconnecting... N` once a second meanwhile, and the
lines go on (shmcli/reconnect.py, shared with the latency modes); as in
redis-cli the increase of requests is then counted from the last line
before the restart.
"""

from __future__ import annotations

import sys
import time

from .cli_connect import Connector
from .connection import Connection
from .reconnect import ReconnectAbort, Reconnecting
from .resp import Bulk, Error, Reply, Verbatim
from .uri import atoi

HEADER = ("------- data ------ --------------------- load -------------------- - child -\n"
          "keys       mem      clients blocked requests            connections          \n")
LONG_MIN = -(2**63)
CHILDREN = {1: "SAVE", 2: "AOF", 3: "SAVE+AOF", 4: "LOAD"}


def info_field(info: str, field: str) -> int:
    """redis-cli's getLongInfoField: the first occurrence of `field`
    anywhere, its value up to CR or a comma, read like strtol."""
    at = info.find(field)
    if at < 0:
        return LONG_MIN
    value = info[at + len(field) + 1:]
    end = min((i for i in (value.find("\r"), value.find(",")) if i >= 0), default=len(value))
    return atoi(value[:end])


def bytes_to_human(n: int) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n < 1024:
        return f"{sign}{n}B"
    for unit, scale in (("K", 1024), ("M", 1024**2), ("G", 1024**3)):
        if n < scale * 1024:
            return f"{sign}{n / scale:.2f}{unit}"
    return sign  # redis-cli leaves terabytes unprinted


def stat_line(info: str, previous_requests: int) -> tuple[str, int]:
    keys = sum(k for j in range(20) if (k := info_field(info, f"db{j}:keys")) != LONG_MIN)
    requests = info_field(info, "total_commands_processed")
    delta = 0 if previous_requests == 0 else requests - previous_requests
    child = (info_field(info, "bgsave_in_progress")
             | info_field(info, "aof_rewrite_in_progress") << 1
             | info_field(info, "loading") << 2)
    line = (f"{keys:<11}{bytes_to_human(info_field(info, 'used_memory')):<8}"
            f" {info_field(info, 'connected_clients'):<8}"
            f"{info_field(info, 'blocked_clients'):<8}"
            f"{f'{requests} (+{delta})':<19}"
            f" {info_field(info, 'total_connections_received'):<12}"
            f"{CHILDREN.get(child, '')}\n")
    return line, requests


def run_stat(conn: Connection, connector: Connector, interval: float, terminal: bool) -> int:
    link = Reconnecting(conn, connector, terminal)
    try:
        return _stat_lines(link, interval or 1.0)
    except ReconnectAbort as exc:
        return exc.code
    finally:
        link.close()


def _info(conn: Connection) -> Reply:
    return conn.execute("INFO")


def _stat_lines(link: Reconnecting, interval: float) -> int:
    requests = rows = 0
    while True:
        reply = link.call(_info)
        if isinstance(reply, Error):
            print(f"ERROR: {reply.message}", file=sys.stderr)
            return 1
        info = reply.data.decode(errors="replace") if isinstance(reply, Bulk | Verbatim) else ""
        if rows % 20 == 0:
            sys.stdout.write(HEADER)
        rows += 1
        line, requests = stat_line(info, requests)
        sys.stdout.write(line)
        sys.stdout.flush()
        time.sleep(interval)
