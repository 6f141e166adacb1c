"""redis-cli's `-u` URIs: redis://[[user:]password@]host[:port][/db].

Percent-decoding and its errors follow redis-cli 7.0.15: a bad escape in the
user or password is an error, the db path is read like atoi (junk is 0), a
user part is sent even when empty (":pass@" authenticates as user ""), and
any scheme but redis:// is refused (shmcli has no TLS, so rediss:// too).
"""

from __future__ import annotations


class UriError(ValueError):
    """The message redis-cli prints for this URI."""


class RedisUri:
    """The parts a URI gives; None for a part it leaves out."""

    __slots__ = ("host", "port", "user", "password", "db")

    def __init__(self) -> None:
        self.host: str | None = None
        self.port: int | None = None
        self.user: str | None = None
        self.password: str | None = None
        self.db: int | None = None


def _decode(text: str) -> str:
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        if raw[i] != ord("%"):
            out.append(raw[i])
            i += 1
            continue
        if len(raw) - i < 3:  # redis-cli reads on into the next field
            raise UriError("Illegal character in URI encoding")
        try:
            out.append(int(raw[i + 1:i + 3].decode(), 16))
        except ValueError:
            raise UriError("Illegal character in URI encoding") from None
        i += 3
    return out.decode(errors="surrogateescape")


def atoi(text: str) -> int:
    """C's atoi, as redis-cli reads numbers: the leading digits, else 0."""
    digits = ""
    for ch in text.strip():
        if not (ch.isdigit() or (not digits and ch in "+-")):
            break
        digits += ch
    try:
        return int(digits)
    except ValueError:
        return 0


def c_int(value: int) -> int:
    """`value` as C's atoi leaves it: strtol's clamp to a 64-bit long, then
    the low 32 bits of an int (redis-cli reads `-p 4294967296` as port 0)."""
    value = max(-(1 << 63), min((1 << 63) - 1, value))
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def int_atoi(text: str) -> int:
    """redis-cli's atoi into an int field (port, db, timeouts)."""
    return c_int(atoi(text))


def parse_uri(uri: str) -> RedisUri:
    if uri.startswith("rediss://"):
        raise UriError("rediss:// (TLS) is not supported by shmcli")
    if not uri.startswith("redis://"):
        raise UriError("Invalid URI scheme")
    rest = uri[len("redis://"):]
    result = RedisUri()
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        if ":" in userinfo:
            user, password = userinfo.split(":", 1)
            result.user = _decode(user)  # "" for ":password@", as redis-cli 7.0 sends it
            result.password = _decode(password)
        else:
            result.password = _decode(userinfo)
    hostport, _, path = rest.partition("/")
    host, sep, port = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if not sep:
        host, port = hostport, ""
    if host:
        result.host = host.strip("[]")
    if port:
        result.port = int_atoi(port)
    if path:
        result.db = int_atoi(path)
    return result
