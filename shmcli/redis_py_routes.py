"""What shmcli.redis_py and shmcli.redis_py_asyncio share: which of redis-py's
commands go through the shared-memory session and which keep to the
connection's socket (the rules are in shmcli/redis_py.py's docstring and
docs/redis-py.md), the reading of the module probe, the pipeline batch, the
kinds of reply a read in hand must leave to redis-py's ways, and the fork
hook.
"""

from __future__ import annotations

import os
import weakref

from redis.exceptions import ConnectionError as RedisConnectionError

from .resp import NOT_ENOUGH, ProtocolError, Reader

# The module's refusal: this request, and those after it, go over the socket.
FALLBACK = b"-SHMFALLBACK "
# Requests in flight over shared memory before their replies are fetched:
# bounded, so a long pipeline never waits on a reply ring nobody reads.
INFLIGHT_MAX = 256 * 1024
# A socket unused this long while commands go through shared memory gets a
# bare HELLO, so the server's `timeout` sees the connection alive.
KEEPALIVE_AFTER = 0.5

# How a command is routed, by its name.
SHM = 0          # through the session
SOCKET = 1       # over the socket: blocks, or only the socket's client can run it
REBIND = 2       # over the socket, then a new session (user, protocol or db changed)
BEGIN_PIN = 3    # over the socket, and so is everything until the transaction ends
END_PIN = 4      # ends a transaction or a WATCH
PIN = 5          # the connection keeps to the socket until it is closed
CLIENT = 6       # CLIENT ...: TRACKING and REPLY pin, the rest is SOCKET
ASKING = 7       # over the socket, and so is the next command (the flag is its)
_ROUTES = {
    **dict.fromkeys(("auth", "hello", "reset", "select"), REBIND),
    **dict.fromkeys(("multi", "watch"), BEGIN_PIN),
    **dict.fromkeys(("exec", "discard", "unwatch"), END_PIN),
    **dict.fromkeys(("subscribe", "psubscribe", "ssubscribe", "monitor"), PIN),
    **dict.fromkeys(("unsubscribe", "punsubscribe", "sunsubscribe", "quit", "blpop",
                     "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin", "bzpopmax",
                     "bzmpop", "wait", "waitaof"), SOCKET),
    "client": CLIENT,
    "asking": ASKING,
}
route_cache: dict[object, int] = {}

# Servers already reported as having no module (one warning per process).
logged_without_module: set[str] = set()
# Connections with a session, forgotten in a forked child (below).
live: weakref.WeakSet = weakref.WeakSet()


# Replies that are neither a push nor a connection error, by their type alone.
PLAIN_REPLIES = frozenset((bytes, str, int, float, bool, type(None)))


def is_push(parser, response) -> bool:
    """Whether `response`, from redis-py's hiredis `parser`, is a RESP3 push."""
    push = getattr(parser, "_hiredis_PushNotificationType", None)
    return push is not None and isinstance(response, push)


def push_or_connection_error(parser, response) -> bool:
    """Whether redis-py's read handles `response` apart from other replies:
    a push is handed to the push handler, a connection error disconnects."""
    return is_push(parser, response) or connection_error_in(response) is not None


def connection_error_in(response) -> RedisConnectionError | None:
    """The connection error redis-py's parser raises for `response` (an
    error reply such as -LOADING, or a list led by one), if any."""
    if isinstance(response, RedisConnectionError):
        return response
    if isinstance(response, list) and response and isinstance(response[0], RedisConnectionError):
        return response[0]
    return None


def route(first: object) -> int:
    """The route of a command whose first argument is `first` ("GET",
    b"SET", "CLIENT SETNAME"...), cached per distinct first argument."""
    try:
        return route_cache[first]
    except (KeyError, TypeError):
        pass
    if isinstance(first, (bytes, bytearray, memoryview)):
        text = bytes(first).decode("latin-1")
    else:
        text = str(first)
    words = text.split(None, 1)
    found = _ROUTES.get(words[0].lower(), SHM) if words else SOCKET
    if len(route_cache) < 4096:
        try:
            route_cache[first] = found
        except TypeError:
            pass
    return found


def _words(args: tuple) -> list[str]:
    """The command's words, lower case, as far as routing needs them."""
    first = args[0]
    if isinstance(first, (bytes, bytearray, memoryview)):
        first = bytes(first).decode("latin-1")
    words = str(first).split()
    for arg in args[1:3]:
        if isinstance(arg, (bytes, bytearray, memoryview)):
            arg = bytes(arg).decode("latin-1")
        words.append(str(arg))
    return [word.lower() for word in words]


def text(value: object) -> object:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _fields(reply: object) -> dict:
    """A HELLO-style reply (RESP3 map or RESP2 flat list) as a dict."""
    if isinstance(reply, dict):
        return {text(key): value for key, value in reply.items()}
    if isinstance(reply, list):
        return {text(key): value for key, value in zip(reply[::2], reply[1::2], strict=False)}
    return {}


def lists_shm_module(hello: object) -> bool:
    """Whether a HELLO reply names the `shm` module."""
    modules = _fields(hello).get("modules") or []
    return any(text(_fields(module).get("name")) == "shm" for module in modules)


def refusal(reply: object) -> str:
    """Why SHM.HANDSHAKE's `reply` opened no session, for the log."""
    if reply is None:  # the module's answer when its sessions are all taken
        return "the server's shm.max-sessions are all in use"
    return str(reply)


def session_address(reply: object) -> tuple[str, str, int] | None:
    """SHM.HANDSHAKE's reply as (token, socket path, ring size); None if it
    is not one."""
    if not isinstance(reply, list) or len(reply) < 3:
        return None
    token, path, ring_size = (text(item) for item in reply[:3])
    return str(token), str(path), int(ring_size)


def plain_url(url: str) -> str:
    """`url` with a "+shm" scheme (redis+shm://, unix+shm://...) as redis-py
    reads it: the scheme without "+shm"."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.endswith("+shm"):
        return scheme[:-len("+shm")] + sep + rest
    return url


def use_shm_classes(pool, classes) -> None:
    """Make `pool` build shared-memory connections: `classes` pairs each of
    redis-py's connection classes with ours (TLS ones are left as they are)."""
    for plain, shm in classes:
        if pool.connection_class is plain:
            pool.connection_class = shm


class Batch(list):
    """pack_commands()'s result: a list of packed chunks redis-py can send as
    it is, one per command, with each command's route."""

    __slots__ = ("routes", "args")


def pack_batch(pack, commands) -> Batch:
    """Pack `commands` (each its argument tuple) with `pack` (one request
    from one tuple: redis_py_pack.quick_packer's) into a Batch."""
    commands = list(commands)
    batch = Batch(map(pack, commands))
    batch.args = commands
    try:  # the cached routes at C speed; route() for the rest
        routes = [route_cache.get(args[0], -1) for args in commands]
    except TypeError:  # an unhashable first argument (a bytearray)
        routes = [-1] * len(commands)
    if -1 in routes:
        routes = [route(args[0]) if found == -1 else found
                  for found, args in zip(routes, commands, strict=True)]
    batch.routes = routes
    return batch


def count_requests(chunks) -> int:
    """How many requests a command packed by someone else holds: RESP
    arrays, or inline commands (a line each, as the server reads them)."""
    data = b"".join(chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                    for chunk in chunks)
    if not data.startswith(b"*"):
        return max(1, data.count(b"\n"))
    reader, count = Reader(), 0
    reader.feed(data)
    try:
        while reader.gets() is not NOT_ENOUGH:
            count += 1
    except ProtocolError:
        pass
    return max(count, 1)


class RouteState:
    """A connection's routing state: whether its next command may go through
    the session.  Mixed into both connection classes."""

    def _reset_route_state(self) -> None:
        self._session_tried = False   # the module was asked on this socket
        self._session_ended = False   # the server ended the session under us
        self._rebind_pending = False  # AUTH/HELLO/RESET/SELECT ran: a new session is due
        self._in_transaction = False  # MULTI or WATCH: the socket's client holds it
        self._pinned = False          # subscriber, MONITOR, tracking: socket until closed
        self._asking = False          # ASKING was sent: the next command is the socket's
        self._socket_held = False     # any of the three above (one test per command)
        self._socket_unread = 0       # replies the socket owes redis-py's reads

    def _socket_only_now(self) -> bool:
        """Whether the next command must use the socket whatever it is."""
        return bool(self._socket_held or self._socket_unread)

    def _note_socket_command(self, found: int, args: tuple) -> None:
        """A command of route `found` goes over the socket: what it changes."""
        self._asking = found == ASKING
        if found == REBIND:
            self._rebind_pending = True
        elif found == BEGIN_PIN:
            self._in_transaction = True
        elif found == END_PIN:
            self._in_transaction = False
        elif found == PIN:
            self._pinned = True
        elif found == CLIENT:
            words = _words(args)
            if len(words) > 1 and words[1] in ("tracking", "reply"):
                self._pinned = True
        self._socket_held = self._in_transaction or self._pinned or self._asking


def _forget_sessions_in_child() -> None:
    """After fork(): the parent's sessions are not the child's to use."""
    for connection in list(live):
        connection._shm = None  # the mapping goes with the child; the parent's stays open
        connection._session_tried = True


os.register_at_fork(after_in_child=_forget_sessions_in_child)
