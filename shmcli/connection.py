"""One logical Redis connection: a socket, plus a shared-memory session when it can.

The socket comes first (TCP or unix, with AUTH / HELLO / SELECT as redis-cli
does them), then SHM.HANDSHAKE asks the module for a session bound to that
socket's client: the session runs as that client's ACL user, in its protocol
and db as they are at the handshake.  Commands go through shared memory; the
module refuses, with one distinct error (``-SHMFALLBACK``), whatever it cannot
run exactly, and those commands (and any that followed them in the same
batch) are sent over the socket instead, in order.  Transactions and
subscriber mode pin the connection to the socket until they end.

AUTH, HELLO and RESET change who the connection is.  The module always
refuses them and ends a session whose client changes user, so they go
straight to the socket, and afterwards the session is replaced by a new one
opened by a new SHM.HANDSHAKE, which takes the new user, protocol and db.  A
SELECT that ran over shared memory is replayed on the socket before the call
returns (and one that ran on the socket reaches the session before its next
command), so both transports (and CLIENT LIST) always agree on the db.

The server's `timeout` sees only the socket; see _keep_socket_alive().
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from .channel import ChannelClosed, ChannelError, ShmChannel, SocketProbe
from .resp import (
    NOT_ENOUGH,
    Array,
    Bulk,
    Error,
    Integer,
    Map,
    Nil,
    Push,
    Reader,
    Reply,
    Set,
    encode_command,
    parse_one,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    ShmMode = Literal["auto", "require", "off"]
    _Method = TypeVar("_Method", bound=Callable[..., Any])
    _T = TypeVar("_T")
Arg = bytes | str | int | float | bytearray | memoryview

FALLBACK_PREFIX = b"SHMFALLBACK "
# Change the user, protocol or db the session was opened with: the module
# refuses them, so they run on the socket, and a new session follows them.
_REBINDING = frozenset({b"auth", b"hello", b"reset"})
# Commands whose effect lives on the connection, tracked in its fields.
_STATE_COMMANDS = _REBINDING | {b"select"}
_SUBSCRIBE = frozenset({b"subscribe", b"psubscribe", b"ssubscribe"})
_UNSUBSCRIBE = frozenset({b"unsubscribe", b"punsubscribe", b"sunsubscribe"})
# Sent over the socket without asking the module: they start socket-only
# state, or they change who the connection is.
_SOCKET_ONLY = _REBINDING | {b"multi", b"watch", b"monitor", b"asking"}
# Commands that run at once inside MULTI instead of being queued.
_RUN_IN_MULTI = frozenset({b"exec", b"discard", b"multi", b"reset", b"quit", b"watch"})
# Commands whose replies change what the connection tracks (not the hot path).
_ROUTED = (_STATE_COMMANDS | _SUBSCRIBE | _UNSUBSCRIBE | _SOCKET_ONLY
           | {b"exec", b"discard", b"unwatch", b"client", b"quit"})
# After a command over shared memory, a socket unused for longer than this
# gets a bare HELLO (see Connection._keep_socket_alive).
KEEPALIVE_AFTER = 0.5
# HELLO without arguments changes nothing, and as a no_auth command it is
# never denied by an ACL (a PING could be, and would fill the ACL LOG): the
# keep-alive, and the question whether the module is loaded.
_BARE_HELLO = encode_command("HELLO")
_PING = encode_command("PING")
# A latency probe waits for its reply spinning this long before it sleeps.
PROBE_SPIN_NS = 500_000


def _lists_shm_module(hello: Reply) -> bool:
    """Whether a HELLO reply's `modules` names the shm module.  Asking HELLO
    (no_auth, never denied by an ACL, never an error) costs the round trip
    the handshake would have, and a server without the module counts no
    error for an unknown SHM.HANDSHAKE."""
    fields = _pairs(hello)
    modules = fields.get(b"modules")
    if not isinstance(modules, Array | Set):
        return False
    return any(_pairs(module).get(b"name") == Bulk(b"shm") for module in modules.items)


def _pairs(reply: Reply) -> dict[bytes, Reply]:
    """A HELLO-style reply (a RESP3 map, or RESP2's flat array of key,
    value) as a dict by key; anything else as an empty dict."""
    if isinstance(reply, Map):
        pairs = list(reply.pairs)
    elif isinstance(reply, Array):
        pairs = list(zip(reply.items[::2], reply.items[1::2], strict=False))
    else:
        return {}
    return {key.data: value for key, value in pairs if isinstance(key, Bulk)}


class ShmUnavailable(ConnectionError):
    """shm="require" and the server offers no shared-memory session."""


class ReplyError(Exception):
    """An error reply, raised (Connection(raise_errors=True)); `reply` is
    the Error, `code` its first word ("ERR", "WRONGTYPE"...)."""

    def __init__(self, reply: Error) -> None:
        super().__init__(reply.message)
        self.reply = reply
        self.code = reply.code


def _name(arg: Arg) -> bytes:
    if isinstance(arg, str):
        return arg.lower().encode()
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg).lower()
    return str(arg).encode()


def _silences_replies(words: list[bytes]) -> bool:
    return (len(words) >= 3 and words[1].lower() == b"reply"
            and words[2].lower() in (b"off", b"skip"))


def is_fallback(reply: Reply) -> bool:
    return isinstance(reply, Error) and reply.text.startswith(FALLBACK_PREFIX)


class SocketTransport:
    """RESP over a plain socket, read with the type-preserving reader."""

    def __init__(self, host: str, port: int, unix_socket: str | None,
                 timeout: float | None, connect_timeout: float | None = None) -> None:
        if unix_socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = unix_socket
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            address = (host, port)
        sock.settimeout(timeout if connect_timeout is None else connect_timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        sock.settimeout(timeout)
        if not unix_socket:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.reader = Reader()
        self.last_used = time.monotonic()  # last time bytes went either way
        self._probe = SocketProbe()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.last_used = time.monotonic()

    def read(self) -> Reply:
        while True:
            reply = self.reader.gets()
            if reply is not NOT_ENOUGH:
                return reply
            chunk = self.sock.recv(1 << 18)
            if not chunk:
                raise ConnectionError("Server closed the connection")
            self.last_used = time.monotonic()
            self.reader.feed(chunk)

    def timed_ping(self, spin_ns: int) -> tuple[int, Reply]:
        """A PING round trip timed in C around the socket alone (Python's
        encoding and parsing are outside the span): (nanoseconds, reply)."""
        if self.reader.has_data():  # a probe needs the socket to itself
            start = time.perf_counter_ns()
            self.send(_PING)
            reply = self.read()
            return time.perf_counter_ns() - start, reply
        elapsed, data, whole = self._probe.ping(self.sock.fileno(), spin_ns,
                                                self.sock.gettimeout())
        self.last_used = time.monotonic()
        self.reader.feed(data)
        if whole:
            return elapsed, self.read()
        start = time.perf_counter_ns()  # not a one-line reply: read the rest here
        reply = self.read()
        return elapsed + time.perf_counter_ns() - start, reply

    def close(self) -> None:
        self.sock.close()


def _serialized(method: _Method) -> _Method:
    """Run `method` holding the connection's lock.  Threads that share a
    Connection take turns: the C session is never entered from two threads
    at once (that corrupted memory), and every reply goes to the thread that
    asked for it.  A thread per connection (a pool) is what scales."""
    @functools.wraps(method)
    def serialized(self: Connection, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return serialized  # type: ignore[return-value]


class Connection:
    """See the module docstring.  Safe to share between threads, which take
    turns (one command or pipeline at a time); a thread per connection is faster.

    `timeout` bounds every reply (None: wait as long as the server lives);
    `connect_timeout`, when given, bounds connecting instead (redis-cli's -t).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379,
                 unix_socket: str | None = None, db: int = 0, username: str | None = None,
                 password: str | None = None, protocol: int = 2, shm: ShmMode = "auto",
                 timeout: float | None = None, connect_timeout: float | None = None,
                 on_setup_error: Callable[[str, Error], None] | None = None,
                 retries: int = 0, raise_errors: bool = False) -> None:
        if shm not in ("auto", "require", "off"):
            raise ValueError(f"shm must be 'auto', 'require' or 'off', not {shm!r}")
        if protocol not in (2, 3):
            raise ValueError(f"protocol must be 2 or 3, not {protocol!r}")
        self._lock = threading.RLock()
        self.host, self.port, self.unix_socket = host, port, unix_socket
        self.timeout = timeout
        self.db = 0
        self.protocol = 2
        self.username = username or "default"
        self.shm_error: str | None = None
        self.setup_failure: str | None = None  # "AUTH", "SELECT" or "HELLO"
        self.last_transport = "socket"  # what carried the last command: "shm" or "socket"
        self.retries = retries  # reconnections tried when the connection is lost
        self.reconnects = 0  # how many times it was re-opened
        self.raise_errors = raise_errors  # error replies raise ReplyError
        self._credentials = (username, password)
        self._connect_timeout = connect_timeout
        self._on_setup_error = on_setup_error
        self._shm_mode: ShmMode = shm
        self._module_absent = False  # SHM.HANDSHAKE is an unknown command here
        self._socket: SocketTransport | None = None
        self._shm: ShmChannel | None = None
        self._open(db, protocol)

    def _reset_state(self) -> None:
        """What a fresh connection tracks (see _note_state)."""
        # AUTH/HELLO/RESET ran on the socket: a new session is due.
        self._rebind_pending = False
        self._socket_backlog: list[bytes] = []  # SELECTs that ran over shm, for the socket
        self._shm_backlog: list[bytes] = []  # ... and those that ran on the socket, for shm
        self._in_multi = self._watching = False
        # State commands queued in MULTI: (position in the transaction, request).
        self._queued_state: list[tuple[int, bytes]] = []
        self._queued = 0
        self._subscribed = False
        self._tracking = False  # invalidations are tracked on the socket's client only
        # ASKING flags the socket's client for its next command only: that one
        # must run there too (the module's client never has the flag).
        self._asking = False
        self._pushes: deque[Reply] = deque()  # RESP3 pushes read while awaiting a reply

    def _open(self, db: int, protocol: int) -> None:
        """Connect, AUTH, SELECT, HELLO and open a session, from scratch."""
        self._reset_state()
        self.db, self.protocol = 0, 2
        try:
            self._socket = SocketTransport(self.host, self.port, self.unix_socket, self.timeout,
                                           self._connect_timeout)
            self._handshake(db, *self._credentials, protocol)
            if self._shm_mode != "off":
                self._open_session(required=self._shm_mode == "require")
        except BaseException:
            self.close()
            raise

    # ---- setup ----

    def _handshake(self, db: int, username: str | None, password: str | None,
                   protocol: int) -> None:
        """AUTH, SELECT, HELLO: redis-cli's order.  The first failure raises,
        or (with on_setup_error) is reported and ends the setup, leaving the
        connection usable as redis-cli leaves it."""
        if password is not None:
            auth = ("AUTH", password) if username is None else ("AUTH", username, password)
            if not self._setup_step("AUTH", *auth):
                return
        if db:
            if not self._setup_step("SELECT", "SELECT", db):
                return
            self.db = db
        if protocol == 3 and self._setup_step("HELLO", "HELLO", "3"):
            self.protocol = 3

    def _setup_step(self, step: str, *command: Arg) -> bool:
        """Run one setup command; True when it succeeded."""
        reply = self._socket_execute(encode_command(*command))
        if not isinstance(reply, Error):
            return True
        if self._on_setup_error is None:
            raise ConnectionError(reply.message)
        self.setup_failure = step
        self._on_setup_error(step, reply)
        return False

    def _open_session(self, required: bool) -> None:
        try:
            hello = None if self._module_absent else self._socket_execute(_BARE_HELLO)
            if isinstance(hello, Error):  # NOAUTH: the module may be there
                raise ChannelError(hello.message)
            if hello is None or not _lists_shm_module(hello):
                self._module_absent = True
                raise ChannelError("the shm module is not loaded on this server")
            reply = self._socket_execute(encode_command("SHM.HANDSHAKE"))
            if isinstance(reply, Error):
                raise ChannelError(reply.message)
            if isinstance(reply, Nil):  # the module's answer when its sessions are all taken
                raise ChannelError("shm: max number of sessions reached (shm.max-sessions)")
            if not isinstance(reply, Array) or len(reply.items) != 4:
                raise ChannelError(f"unexpected SHM.HANDSHAKE reply: {reply!r}")
            token, path, ring_size = (reply.items[0], reply.items[1], reply.items[2])
            assert isinstance(token, Bulk) and isinstance(path, Bulk)
            assert isinstance(ring_size, Integer)
            self._shm = ShmChannel(path.data.decode(), token.data.decode(), ring_size.value,
                                   self.timeout)
            self.shm_error = None
        except ChannelError as exc:
            self.shm_error = str(exc)
            if required:
                raise ShmUnavailable(f"shared memory is not available: {exc}") from exc

    # ---- public API ----

    @property
    def transport(self) -> str:
        """"shm" while commands go through shared memory, else "socket"."""
        return "shm" if self._shm is not None else "socket"

    @property
    def connected(self) -> bool:
        return self._socket is not None

    @property
    def in_transaction(self) -> bool:
        """Between a successful MULTI and its EXEC or DISCARD."""
        return self._in_multi

    @_serialized
    def execute(self, *args: Arg) -> Reply:
        """Run one command and return its typed reply.  Error replies are
        values, or raise ReplyError with raise_errors; a lost connection is
        re-opened and the command run again up to `retries` times."""
        if not args:
            raise ValueError("execute() needs a command")
        reply = (self._with_retries(self._execute, args) if self.retries
                 else self._execute(args))  # the hot path: no retry frame
        if self.raise_errors and isinstance(reply, Error):
            raise ReplyError(reply)
        return reply

    def _execute(self, args: Sequence[Arg]) -> Reply:
        shm = self._shm
        if shm is not None and not self._pinned and not self._shm_backlog:
            name = _name(args[0])
            if name not in _ROUTED:  # the hot path: one round trip, nothing to track
                request = encode_command(*args)
                reply = parse_one(self._shm_call(shm, request))
                if not is_fallback(reply):
                    self.last_transport = "shm"
                    self._keep_socket_alive()
                    return reply
                self._resume(shm)
                replies: list[Reply] = []
                self._run_socket([(name, request)], 0, replies)
                return replies[0]
        return self._execute_many([args])[0]

    @_serialized
    def timed_ping(self, spin_ns: int = PROBE_SPIN_NS) -> int:
        """One PING round trip in nanoseconds, timed in C around the
        transport alone, as redis-cli times its latency probes; the reply
        is awaited spinning up to spin_ns.  The transport is the one
        execute("PING") would take (last_transport says which); a PING the
        module refuses counts both tries.  Errors as for execute()."""
        return self.timed_ping_reply(spin_ns)[0]

    @_serialized
    def timed_ping_reply(self, spin_ns: int = PROBE_SPIN_NS) -> tuple[int, Reply]:
        """timed_ping(), and the reply of the transport that answered
        (+PONG, or an error such as -LOADING: never raised)."""
        if self._socket is None:
            raise ConnectionError("not connected")
        elapsed = 0
        shm = self._shm
        if shm is not None and not self._pinned and not self._shm_backlog:
            try:
                elapsed, raw = shm.timed_ping(spin_ns)
            except ChannelError as exc:
                raise self._session_lost(exc) from None
            reply = parse_one(raw)
            if not is_fallback(reply):
                self.last_transport = "shm"
                self._keep_socket_alive()
                return elapsed, reply
            self._resume(shm)
        if self._subscribed or self._in_multi or self._tracking:
            start = time.perf_counter_ns()  # replies and pushes are Connection's to sort
            reply = self._execute_many([("PING",)])[0]
            return elapsed + time.perf_counter_ns() - start, reply
        self._sync_socket()
        try:
            socket_elapsed, reply = self._socket.timed_ping(spin_ns)
        except (ConnectionError, OSError):
            self.close()
            raise
        self.last_transport = "socket"
        return elapsed + socket_elapsed, reply

    @_serialized
    def execute_many(self, commands: Iterable[Sequence[Arg]]) -> list[Reply]:
        """Pipeline: send every command, then read every reply, in order.
        With raise_errors the first error reply raises ReplyError (after
        every reply was read); retries as for execute()."""
        commands = list(commands)
        if not all(commands):
            raise ValueError("execute_many() needs a command in every entry")
        replies = self._with_retries(self._execute_many, commands)
        if self.raise_errors:
            for reply in replies:
                if isinstance(reply, Error):
                    raise ReplyError(reply)
        return replies

    def _with_retries(self, run: Callable[[Any], _T], commands: Any) -> _T:
        """run(commands); when the connection is (or gets) lost and retries
        are allowed, re-open it (the db, protocol and user it had; not the
        client name) and run them again.  Never inside MULTI, WATCH or
        subscriber mode, whose state died with the connection."""
        attempt = 0
        while True:
            resumable = not (self._in_multi or self._watching or self._subscribed)
            try:
                if self._socket is None and self.retries and resumable:
                    self._reopen()
                return run(commands)
            except (ConnectionError, OSError) as exc:
                if (isinstance(exc, ShmUnavailable) or attempt >= self.retries
                        or not resumable):
                    raise
                attempt += 1
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
                self.close()

    def _reopen(self) -> None:
        self._open(self.db, self.protocol)
        self.reconnects += 1
        import logging  # only here: start-up time
        logging.getLogger("shmcli").warning(
            "reconnected to %s (transport: %s)",
            self.unix_socket or f"{self.host}:{self.port}", self.transport)

    def _execute_many(self, commands: list[Sequence[Arg]]) -> list[Reply]:
        batch = [(_name(cmd[0]), encode_command(*cmd)) for cmd in commands]
        if self._socket is None:
            raise ConnectionError("not connected")
        for name, request in batch:
            if name == b"client" and _silences_replies(self._words(request)):
                raise ValueError("CLIENT REPLY OFF/SKIP would leave the connection waiting "
                                 "for replies that never come; it is not supported here")
        replies: list[Reply] = []
        start = 0
        refused_at = -1  # the module refused this command: it goes over the socket
        while start < len(batch):
            if (self._shm is not None and start != refused_at
                    and not self._pinned_to_socket(batch[start][0])):
                start, refused = self._run_shm(batch, start, replies)
                if refused:
                    refused_at = start
            else:
                start = self._run_socket(batch, start, replies)
        if self._socket_backlog:  # keep what CLIENT LIST shows true at once
            self._sync_socket()
        self._keep_socket_alive()
        return replies

    @_serialized
    def take_pushes(self) -> list[Reply]:
        """RESP3 pushes (invalidations...) that arrived ahead of replies."""
        pushes = list(self._pushes)
        self._pushes.clear()
        return pushes

    @_serialized
    def read_reply(self) -> Reply:
        """The next message pushed on the socket (subscriber mode, MONITOR)."""
        if self._pushes:
            return self._pushes.popleft()
        if self._socket is None:
            raise ConnectionError("not connected")
        return self._socket.read()

    @_serialized
    def close(self) -> None:
        """Close both transports; what lived on them (a transaction,
        subscriptions) ends with them."""
        if self._shm is not None:
            self._shm.close()
            self._shm = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._reset_state()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_serialized
    def raw_transports(self) -> tuple[ShmChannel | None, socket.socket | None]:
        """For a bulk sender that writes raw RESP itself (--pipe), with both
        transports brought in step first: the session that commands outside
        _ROUTED would use now (None without one, or while pinned to the
        socket), and the socket (None once closed).  Only commands outside
        _ROUTED may be sent this way; run the others with execute_many()."""
        if self._socket is None:
            return None, None
        self._sync_socket()
        shm = None if self._pinned else self._shm
        if shm is not None:
            self._sync_shm(shm)
            self._keep_socket_alive()  # the bulk sender calls this between chunks
            if self._socket is None:
                raise ConnectionError("Server closed the connection")
        return shm, self._socket.sock

    # ---- routing ----

    @property
    def _pinned(self) -> bool:
        """Connection state that lives on the socket's client only."""
        return (self._in_multi or self._watching or self._subscribed or self._tracking
                or self._asking)

    def _pinned_to_socket(self, name: bytes) -> bool:
        return self._pinned or name in _SUBSCRIBE or name in _SOCKET_ONLY

    def _shm_call(self, shm: ShmChannel, request: bytes) -> bytes:
        try:
            return shm.call(request)
        except ChannelError as exc:
            raise self._session_lost(exc) from None

    def _resume(self, shm: ShmChannel) -> None:
        try:
            shm.resume()
        except ChannelError as exc:
            raise self._session_lost(exc) from None

    def _session_lost(self, exc: ChannelError) -> Exception:
        """After any channel error the session is out of step (a reply may
        still be on its way): close everything, report as a socket would."""
        self.close()
        if isinstance(exc, ChannelClosed):
            return ConnectionError("Server closed the connection")
        return exc

    def _run_shm(self, batch: list[tuple[bytes, bytes]], start: int,
                 replies: list[Reply]) -> tuple[int, bool]:
        """Send a chunk over shared memory; returns where the next chunk starts
        and whether the module refused the command there."""
        assert self._shm is not None
        end, budget = start, 0
        while end < len(batch) and not self._pinned_to_socket(batch[end][0]):
            size = len(batch[end][1])
            if end > start and budget + size > 256 * 1024:
                break  # bounded chunks: requests never wait for replies to be read
            budget += size
            end += 1
        shm = self._shm
        self.last_transport = "shm"
        self._sync_shm(shm)
        if end - start == 1:
            raw = [self._shm_call(shm, batch[start][1])]
        else:
            try:
                shm.send_batch([request for _, request in batch[start:end]])
                raw = [shm.recv() for _ in range(start, end)]
            except ChannelError as exc:
                raise self._session_lost(exc) from None
        for offset, data in enumerate(raw):
            reply = parse_one(data)
            if is_fallback(reply):
                self._resume(shm)
                return start + offset, True  # this one and the rest: over the socket
            name = batch[start + offset][0]
            self._note_state(name, batch[start + offset][1], reply, via_shm=True)
            replies.append(reply)
        return end, False

    def _run_socket(self, batch: list[tuple[bytes, bytes]], start: int,
                    replies: list[Reply]) -> int:
        end = start + 1
        # Everything up to the next command that may use shared memory again,
        # or up to one that gets a new session (the commands after it use it).
        while (end < len(batch) and batch[end - 1][0] not in _REBINDING
               and (self._shm is None or batch[end - 1][0] == b"asking"
                    or self._pinned_to_socket(batch[end][0]))):
            end += 1
        self._sync_socket()
        assert self._socket is not None
        self.last_transport = "socket"
        self._send_socket(b"".join(request for _, request in batch[start:end]))
        for name, request in batch[start:end]:
            reply = self._read_socket(name)
            self._note_state(name, request, reply, via_shm=False)
            replies.append(reply)
        # Only once every reply of the chunk is read: the handshake's reply is next.
        if self._rebind_pending and not self._in_multi and not self._subscribed:
            self._rebind_session()
        return end

    def _socket_execute(self, request: bytes) -> Reply:
        self._send_socket(request)
        return self._read_socket()

    def _send_socket(self, data: bytes) -> None:
        assert self._socket is not None
        try:
            self._socket.send(data)
        except OSError:  # a reset or broken pipe: the connection is over, as for a read
            self.close()
            raise

    def _read_socket(self, name: bytes = b"") -> Reply:
        """The reply to the command `name`; RESP3 pushes that are not its
        reply (messages, invalidations) are kept for read_reply()."""
        assert self._socket is not None
        try:
            while True:
                reply = self._socket.read()
                if not isinstance(reply, Push) or self._push_answers(name, reply):
                    return reply
                self._pushes.append(reply)
        except (ConnectionError, OSError):
            self.close()
            raise

    @staticmethod
    def _push_answers(name: bytes, push: Push) -> bool:
        """In RESP3, (un)subscribe confirmations arrive as pushes."""
        first = push.items[0] if push.items else None
        return (name in _SUBSCRIBE or name in _UNSUBSCRIBE) and isinstance(first, Bulk) \
            and first.data.lower() == name

    def _sync_socket(self) -> None:
        """Replay SELECTs that ran over shared memory."""
        backlog, self._socket_backlog = self._socket_backlog, []
        for request in backlog:
            self._socket_execute(request)

    def _sync_shm(self, shm: ShmChannel) -> None:
        """Replay SELECTs that ran on the socket (while pinned to it, or
        inside a transaction) so the shared-memory session agrees."""
        backlog, self._shm_backlog = self._shm_backlog, []
        for request in backlog:
            self._shm_call(shm, request)

    def _keep_socket_alive(self) -> None:
        """The server's `timeout` closes a client whose socket has been idle
        for that many seconds, and it sees only the socket: the traffic over
        shared memory does not count, so a connection busy over shm would be
        closed (its session with it) as if it were idle.  After a command
        over shm, a socket unused for over KEEPALIVE_AFTER seconds (well
        under the smallest `timeout`, one second) gets a bare HELLO, so the
        connection lives exactly as long as the same traffic on the socket
        would keep it.  A connection really idle still times out."""
        sock = self._socket
        if (sock is None or self._shm is None or self._pinned
                or time.monotonic() - sock.last_used <= KEEPALIVE_AFTER):
            return
        try:
            self._send_socket(_BARE_HELLO)
            self._read_socket()  # its reply is not the caller's
        except (ConnectionError, OSError):
            self.close()  # the caller has its reply; the next command reports the loss

    def _rebind_session(self) -> None:
        """AUTH, HELLO or RESET ran on the socket: the session has the old
        user, protocol and db (and the module ends it when the user
        changed).  Open a new one, which takes them from the socket's client
        as they are now.  Where that fails (a user without SHM.HANDSHAKE,
        NOAUTH after RESET) the connection stays on the socket."""
        self._rebind_pending = False
        self._drop_session()
        if self._shm_mode == "off" or self._module_absent or self._socket is None:
            return
        try:
            self._sync_socket()
            self._open_session(required=False)
        except (ConnectionError, OSError):
            self.close()  # the caller has its replies; the next command reports the loss

    def _drop_session(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm = None
        self._shm_backlog.clear()  # a new session starts in the socket's db

    def _note_state(self, name: bytes, request: bytes, reply: Reply, via_shm: bool) -> None:
        self._asking = name == b"asking" and not self._in_multi and not isinstance(reply, Error)
        if self._in_multi and name not in _RUN_IN_MULTI:
            if not isinstance(reply, Error):  # queued: takes effect at EXEC, if ever
                if name in _STATE_COMMANDS:
                    self._queued_state.append((self._queued, request))
                self._queued += 1
            return
        if isinstance(reply, Error):
            # A failed HELLO may have applied some of its options (Redis 7.0
            # authenticates before it checks SETNAME's name): the session
            # must be whatever the socket's client is now.
            if name == b"hello":
                self._identity_changed()
            return
        if name in _STATE_COMMANDS:
            self._state_changed(name, request, via_shm)
        elif name == b"multi":
            self._in_multi = True
            self._queued_state, self._queued = [], 0
        elif name == b"watch":
            self._watching = True
        elif name in (b"exec", b"discard"):
            queued, self._queued_state = self._queued_state, []
            self._in_multi = self._watching = False
            if name == b"exec" and isinstance(reply, Array):
                for position, queued_request in queued:
                    if position >= len(reply.items):
                        continue
                    queued_name = _name(self._words(queued_request)[0])
                    if not isinstance(reply.items[position], Error):
                        self._state_changed(queued_name, queued_request, via_shm=False)
                    elif queued_name == b"hello":
                        self._identity_changed()
        elif name == b"unwatch":
            self._watching = False
        elif name in _SUBSCRIBE:
            self._subscribed = True
        elif name in _UNSUBSCRIBE and isinstance(reply, (Array, Push)):
            count = reply.items[-1] if reply.items else None
            self._subscribed = not (isinstance(count, Integer) and count.value == 0)
        elif name == b"client":
            words = self._words(request)
            if len(words) >= 3 and words[1].lower() == b"tracking":
                self._tracking = words[2].lower() == b"on"
        elif name == b"quit":
            self.close()

    def _state_changed(self, name: bytes, request: bytes, via_shm: bool) -> None:
        """A state command took effect on one transport."""
        words = self._words(request)
        if name == b"select":  # the other transport follows
            if via_shm:
                self._socket_backlog.append(request)
            elif self._shm is not None:
                self._shm_backlog.append(request)
            self.db = int(words[1])
            return
        if name == b"auth":
            self.username = words[1].decode(errors="surrogateescape") if len(words) == 3 \
                else "default"
        elif name == b"hello":
            if len(words) >= 2:
                self.protocol = int(words[1])
            at = 2
            while at < len(words):  # the last AUTH option is the one that counts
                option = words[at].lower()
                if option == b"auth" and at + 2 < len(words):
                    self.username = words[at + 1].decode(errors="surrogateescape")
                    at += 3
                else:
                    at += 2 if option == b"setname" else 1
        elif name == b"reset":
            self.db, self.protocol, self.username = 0, 2, "default"
            self._in_multi = self._watching = self._subscribed = self._tracking = False
        self._identity_changed()

    def _identity_changed(self) -> None:
        """The socket's client may have a new user or protocol: the session is
        stale at once, and a new one is opened once the socket can take a
        handshake (after the batch's replies, outside MULTI and subscriber
        mode)."""
        self._drop_session()
        self._rebind_pending = True

    @staticmethod
    def _words(request: bytes) -> list[bytes]:
        args = parse_one(request)
        assert isinstance(args, Array)
        return [item.data for item in args.items if isinstance(item, Bulk)]


def connect(host: str = "127.0.0.1", port: int = 6379, unix_socket: str | None = None,
            db: int = 0, username: str | None = None, password: str | None = None,
            protocol: int = 2, shm: ShmMode = "auto", timeout: float | None = None,
            retries: int = 0, raise_errors: bool = False) -> Connection:
    """Open a connection; see :class:`Connection`."""
    return Connection(host=host, port=port, unix_socket=unix_socket, db=db, username=username,
                      password=password, protocol=protocol, shm=shm, timeout=timeout,
                      retries=retries, raise_errors=raise_errors)
