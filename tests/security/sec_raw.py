"""Shared pieces of the security suite: raw sessions, users, socket oracles.

A raw session is what any local process can build: a control connection
(socket only) that asks SHM.HANDSHAKE, and a bare ShmChannel.  No client-side
routing protects it, so whatever it gets is what the module decided.
"""

from __future__ import annotations

from servers import RawSocket, Server

from shmcli.channel import ShmChannel
from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Integer, Status, encode_command

REFUSED = b"-SHMFALLBACK "
PASSWORD = "pw"


def handshake(ctl: Connection) -> tuple[str, str, int]:
    """(token, socket path, ring size) for the connection `ctl`."""
    reply = ctl.execute("SHM.HANDSHAKE")
    assert isinstance(reply, Array), reply
    token, path, ring = reply.items[:3]
    assert isinstance(token, Bulk) and isinstance(path, Bulk) and isinstance(ring, Integer)
    return token.data.decode(), path.data.decode(), ring.value


class RawSession:
    """A control connection and a bare channel bound to it."""

    def __init__(self, srv: Server, username: str | None = None,
                 password: str | None = None) -> None:
        kw: dict[str, object] = {"shm": "off", "timeout": 10.0}
        if username is not None:
            kw.update(username=username, password=password)
        elif srv.config.get("requirepass"):
            kw["password"] = srv.config["requirepass"]
        self.ctl = srv.connect(**kw)
        client_id = self.ctl.execute("CLIENT", "ID")
        assert isinstance(client_id, Integer), client_id
        self.client_id = client_id.value
        token, path, ring = handshake(self.ctl)
        self.channel = ShmChannel(path, token, ring, 10.0)

    def request(self, data: bytes) -> bytes:
        """One request's reply; a refusal is followed by RESUME, as a client must."""
        reply = self.channel.call(data)
        if reply.startswith(REFUSED):
            self.channel.resume()
        return reply

    def call(self, *args: str | bytes | int) -> bytes:
        return self.request(encode_command(*args))

    def close(self) -> None:
        self.channel.close()
        self.ctl.close()

    def __enter__(self) -> RawSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def socket_as(srv: Server, username: str | None = None,
              password: str | None = None) -> RawSocket:
    """A bare unix socket, authenticated as `username` (the oracle)."""
    sock = RawSocket(srv.unix_socket)
    if username is not None:
        assert sock.call("AUTH", username, password or "") == b"+OK\r\n"
    elif srv.config.get("requirepass"):
        assert sock.call("AUTH", srv.config["requirepass"]) == b"+OK\r\n"
    return sock


def socket_reply(srv: Server, username: str | None, password: str | None,
                 *cmd: str) -> bytes:
    """The socket's reply to `cmd`, as `username`: what shm must match."""
    sock = socket_as(srv, username, password)
    try:
        return sock.call(*cmd)
    finally:
        sock.close()


def set_user(srv: Server, name: str, *rules: str) -> None:
    with srv.admin() as admin:
        reply = admin.execute("ACL", "SETUSER", name, "reset", *rules)
    assert reply == Status(b"OK"), reply


def del_users(srv: Server, *names: str) -> None:
    with srv.admin() as admin:
        admin.execute("ACL", "DELUSER", *names)


def client_line(srv: Server, client_id: int) -> dict[str, str]:
    """CLIENT LIST's fields for one client id ({} when it is gone)."""
    with srv.admin() as admin:
        reply = admin.execute("CLIENT", "LIST", "ID", str(client_id))
    assert isinstance(reply, Bulk), reply
    line = reply.data.decode().strip()
    return dict(f.split("=", 1) for f in line.split(" ") if "=" in f) if line else {}


def is_refusal(reply: bytes) -> bool:
    return reply.startswith(REFUSED)


def alive_and_answering(srv: Server) -> bool:
    if not srv.alive():
        return False
    with srv.admin() as admin:
        return admin.execute("PING") == Status(b"PONG")
