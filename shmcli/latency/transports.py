"""--latency-compare's three connections to one server: shared memory, the
unix socket and TCP.

The user gives one address (-h/-p or -s); the other transport's address is
asked from the server itself (CONFIG GET unixsocket / port), and every
connection must reach the same server (INFO's run_id), so a unix socket path
that happens to exist on this host for another server is never measured.
A transport that cannot be had is kept with the reason (module not loaded,
no unix socket configured, TCP off, CONFIG refused, connect error): its
samples are absent, never zero.

- shm:  the connection as the user asked for it, with shm="require"
        (the probe travels the session; its socket is only the control line);
- unix: shm="off" over the unix socket;
- tcp:  shm="off" over host:port (the host the user gave, 127.0.0.1 by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cli_connect import Connector, FatalSetupError
from ..connection import Connection
from ..options import Options
from ..resp import Array, Bulk, Error, Map, Reply, Verbatim
from .histogram import LatencyHistogram

__all__ = ["ServerFacts", "Transport", "open_transports"]

TRANSPORTS = ("shm", "unix", "tcp")
SHM_SETTINGS = ("shm.exec-mode", "shm.worker-spin-us")


@dataclass
class Transport:
    name: str  # "shm", "unix" or "tcp"
    where: str = ""
    conn: Connection | None = None
    absent: str | None = None  # why it is not measured at all
    lost: str | None = None  # why it stopped during the run
    hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    off_path: int = 0  # shm probes the module sent back to the socket

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class ServerFacts:
    where: str
    version: str
    run_id: str
    config: dict[str, str]


def _text(reply: Reply) -> str:
    if isinstance(reply, (Bulk, Verbatim)):
        return reply.data.decode("utf-8", "replace")
    return ""


def _info(conn: Connection) -> dict[str, str]:
    text = _text(conn.execute("INFO", "server"))
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _config(conn: Connection, names: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    """CONFIG GET of each name; the error text when CONFIG is refused."""
    found: dict[str, str] = {}
    for name in names:
        reply = conn.execute("CONFIG", "GET", name)
        if isinstance(reply, Error):
            return found, reply.message
        pairs: list[tuple[Reply, Reply]] = []
        if isinstance(reply, Map):
            pairs = list(reply.pairs)
        elif isinstance(reply, Array):
            items = reply.items
            pairs = list(zip(items[::2], items[1::2], strict=False))
        for key, value in pairs:
            found[_text(key)] = _text(value)
    return found, None


def _same_server(conn: Connection, run_id: str) -> bool:
    return not run_id or _info(conn).get("run_id", "") == run_id


def open_transports(opts: Options) -> tuple[ServerFacts, list[Transport]] | None:
    """The server's facts and the three transports, or None when the server
    cannot be reached at all (the reason is on stderr, as redis-cli says it)."""
    plain = opts.replace(shm="off")
    connector = Connector(plain)
    base = connector.connect()
    if base is None:
        return None
    try:
        if connector.setup_failed(base):
            return None
        info = _info(base)
        config, refused = _config(base, ("unixsocket", "port"))
        settings, _ = _config(base, SHM_SETTINGS) if refused is None else ({}, None)
    finally:
        base.close()
    flavour = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version") or info.get("redis_version", "?")
    facts = ServerFacts(connector.where, f"{flavour} {version}", info.get("run_id", ""),
                        {**config, **settings})
    transports = [_open_shm(opts, facts.run_id), _open_unix(opts, config, refused, facts.run_id),
                  _open_tcp(opts, config, refused, facts.run_id)]
    return facts, transports


def _checked(transport: Transport, conn: Connection | None, run_id: str) -> Transport:
    if conn is None:
        transport.absent = f"cannot connect to {transport.where}"
    elif not _same_server(conn, run_id):
        conn.close()
        transport.absent = f"{transport.where} is another server"
    else:
        transport.conn = conn
    return transport


def _open_shm(opts: Options, run_id: str) -> Transport:
    connector = Connector(opts.replace(shm="require"))
    transport = Transport("shm", f"session via {connector.where}")
    try:
        conn = connector.connect()
    except FatalSetupError as exc:
        transport.absent = str(exc).removeprefix("shmcli: ")
        return transport
    return _checked(transport, conn, run_id)


def _open_unix(opts: Options, config: dict[str, str], refused: str | None,
               run_id: str) -> Transport:
    path = opts.socket or config.get("unixsocket", "")
    transport = Transport("unix", path)
    if not path:
        transport.absent = (f"no unix socket path (CONFIG GET unixsocket: {refused})" if refused
                            else "the server has no unix socket (unixsocket is not set)")
        return transport
    connector = Connector(opts.replace(socket=path, shm="off"))
    return _checked(transport, connector.connect(), run_id)


def _open_tcp(opts: Options, config: dict[str, str], refused: str | None,
              run_id: str) -> Transport:
    port = opts.port
    if opts.socket:
        if refused is not None:
            return Transport("tcp", "", absent=f"no TCP port (CONFIG GET port: {refused})")
        port = int(config.get("port", "0") or 0)
    transport = Transport("tcp", f"{opts.host}:{port}")
    if port == 0:
        transport.absent = "the server does not listen on TCP (port 0)"
        return transport
    connector = Connector(opts.replace(socket=None, port=port, shm="off"))
    return _checked(transport, connector.connect(), run_id)
