"""redis-py over the shared-memory channel: one line changes in an application.

    r = redis.Redis(unix_socket_path="/run/redis/redis.sock")            # before
    r = shmcli.redis_py.Redis(unix_socket_path="/run/redis/redis.sock")  # after

or, where the application builds its own pool,
``redis.ConnectionPool(connection_class=ShmUnixConnection, path=...)``
(``ShmConnection`` for TCP), or ``shmcli.redis_py.from_url("redis+shm://...")``.

How it fits into redis-py.  The connection classes are redis-py's own, with
one shared-memory session added per connection.  redis-py connects, AUTHs,
SELECTs and names the connection over its socket exactly as it always does;
then a bare HELLO asks whether the server has the `shm` module and, if so,
SHM.HANDSHAKE opens a session bound to that socket's client (its user, db
and protocol).  From then on:

- Requests: each command (and each command of a pipeline) goes through the
  session unless its effect lives on the socket's client (AUTH, HELLO,
  SELECT, MULTI/WATCH..., SUBSCRIBE, MONITOR, CLIENT ...) or it blocks.  The
  module refuses, with -SHMFALLBACK, whatever else it cannot run exactly; a
  refused command and those sent after it are sent over the socket, in order.
- Replies: redis-py's own parser (hiredis or Python) reads them, from a view
  of the socket (_SocketView) that yields the shared-memory replies first,
  in order, then the socket's bytes (hiredis gets them fed into its reader
  directly, which is quicker, and read_response takes them from there,
  doing what redis-py's read does with a reply).  So replies have
  redis-py's types and raise redis-py's exceptions, byte for byte as over
  the socket.
- Packing and the pool's readiness check are redis-py's, done in less time
  where the result is provably the same (redis_py_pack, can_read).

Ordering rule: a command goes through shared memory only when the socket
owes no reply, and every reply the session owes is fetched before anything
is sent on the socket; so replies are always read in the order they were asked.

Not thread-safe beyond redis-py's own rule (a connection per thread, which
its pool gives), but two threads misusing one connection can never enter the
C session at once.  After fork() a child never touches its parent's session:
the pool's pid check gives it new connections, and an inherited one keeps to
its socket.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence

import redis
from redis.connection import Connection as _RedisConnection
from redis.connection import UnixDomainSocketConnection as _RedisUnixConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import redis_py_routes as routes
from .channel import ChannelClosed, ChannelError, ChannelTimeout, ShmChannel
from .redis_py_pack import quick_packer
from .redis_py_routes import FALLBACK, INFLIGHT_MAX, KEEPALIVE_AFTER, SHM, SOCKET, RouteState

__all__ = ["Redis", "ShmConnection", "ShmUnixConnection", "from_url"]

log = logging.getLogger("shmcli.redis_py")

# redis-py's own (neither of its connection classes overrides it).
_read_response = redis.connection.AbstractConnection.read_response

try:  # what ShmConnection.can_read needs to see that hiredis holds nothing unread
    from hiredis import Reader as _HiredisReader
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _HiredisParser
    if not hasattr(_HiredisReader(), "has_data"):
        raise ImportError("hiredis too old to say whether it holds data")
except ImportError:
    _HiredisParser = None


class _SocketView:
    """The socket as redis-py's parsers read it: the replies that came
    through shared memory first, in order, then the socket's own bytes.
    Everything else is the socket's."""

    _PASSED = ("settimeout", "gettimeout", "sendall", "fileno")
    __slots__ = ("_sock", "_owner", *_PASSED)

    def __init__(self, sock: socket.socket, owner: _ShmRouting) -> None:
        self._sock = sock
        self._owner = owner
        # What redis-py calls per command, bound once (not via __getattr__);
        # what the socket lacks (a test's mock) stays missing.
        for name in self._PASSED:
            method = getattr(sock, name, None)
            if method is not None:
                setattr(self, name, method)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def pending(self) -> bool:
        """Bytes readable without the socket (hiredis' can_read asks)."""
        return self._owner._shm_pending()

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._owner._shm_bytes(size, _peeks(flags))
        if data is None:
            return self._sock.recv(size, *flags)
        return bytes(data)

    def recv_into(self, buffer, *size_flags: int) -> int:
        if size_flags:
            size = size_flags[0] or len(buffer)
            data = self._owner._shm_bytes(size, _peeks(size_flags[1:]))
        else:  # hiredis' call
            data = self._owner._shm_bytes(len(buffer), False)
        if data is None:
            return self._sock.recv_into(buffer, *size_flags)  # as given: the socket's own
        memoryview(buffer)[:len(data)] = data
        return len(data)


def _peeks(flags: tuple[int, ...]) -> bool:
    return bool(flags and flags[0] & socket.MSG_PEEK)


class _ShmRouting(RouteState):
    """What ShmConnection and ShmUnixConnection add to redis-py's classes."""

    def __init__(self, *args, **kwargs) -> None:
        self._shm: ShmChannel | None = None
        self._shm_lock = threading.Lock()
        self._reset_routing()
        super().__init__(*args, **kwargs)
        self._pack = quick_packer(self)

    def _reset_routing(self) -> None:
        self._reset_route_state()
        self._shm_sent: deque[bytes] = deque()  # requests whose replies are not fetched
        self._shm_inflight = 0        # their bytes
        self._ready: deque = deque()  # replies fetched, not yet handed to the parser
        self._shm_unread = 0          # replies the session owes redis-py's reads
        self._fetch_error: OSError | None = None  # for the socket view to raise
        self._socket_used = time.monotonic()

    @property
    def transport(self) -> str:
        """"shm" while commands go through shared memory, else "socket"."""
        return "shm" if self._shm is not None else "socket"

    # ---- connecting ----

    def _connect(self):
        sock = super()._connect()
        self._socket_poll = select.poll()
        self._socket_poll.register(sock, select.POLLIN)
        return _SocketView(sock, self)

    def on_connect(self) -> None:
        super().on_connect()
        self._start_session()

    def on_connect_check_health(self, *args, **kwargs) -> None:  # redis-py >= 6
        super().on_connect_check_health(*args, **kwargs)
        self._start_session()

    def _address(self) -> str:
        return self._host_error()

    def _socket_request(self, *args) -> object:
        """One command over the socket and its reply; an error reply is
        returned, not raised (nor does it close the connection)."""
        self._send_socket(self.pack_command(*args), 1, check_health=False)
        try:
            return self.read_response(disconnect_on_error=False)
        except RedisError as exc:
            if self._sock is None:
                raise
            return exc

    def _start_session(self) -> None:
        """Ask the server for a session, once per socket (and after a rebind)."""
        if self._session_tried or self._sock is None:
            return
        self._session_tried = True
        self._rebind_pending = False  # the new session takes the client as it is now
        hello = self._socket_request("HELLO")
        if isinstance(hello, RedisError):
            return  # NOAUTH: commands fail on the socket as they would anyway
        if not routes.lists_shm_module(hello):
            if self._address() not in routes.logged_without_module:
                routes.logged_without_module.add(self._address())
                log.warning("%s has no shm module: redis-py uses its socket",
                            self._address())
            return
        reply = self._socket_request("SHM.HANDSHAKE")
        address = routes.session_address(reply)
        if address is None:
            log.info("%s: no shared-memory session (%s); using the socket",
                     self._address(), routes.refusal(reply))
            return
        token, path, ring_size = address
        try:
            self._shm = ShmChannel(path, token, ring_size, self.socket_timeout)
        except ChannelError as exc:
            log.info("%s: no shared-memory session (%s); using the socket",
                     self._address(), exc)
            return
        routes.live.add(self)

    def _drop_session(self) -> None:
        shm, self._shm = self._shm, None
        if shm is not None:
            with self._shm_lock:
                shm.close()

    def disconnect(self, *args, **kwargs) -> None:
        self._drop_session()
        self._reset_routing()
        super().disconnect(*args, **kwargs)

    # ---- sending ----

    def pack_commands(self, commands):
        return routes.pack_batch(self._pack, commands)

    def send_command(self, *args, **kwargs) -> None:
        try:
            route = routes.route_cache[args[0]]
        except (KeyError, TypeError, IndexError):
            route = routes.route(args[0]) if args else SOCKET
        shm = self._shm
        if (route != SHM or shm is None or self._shm_sent
                or self._socket_held or self._socket_unread or self._rebind_pending
                or (self.health_check_interval and kwargs.get("check_health", True))
                or time.monotonic() - self._socket_used > KEEPALIVE_AFTER):
            self._send_command_otherwise(route, args, kwargs.get("check_health", True))
            return
        # The common case, one request and nothing in flight or due, inline.
        request = self._pack(args)
        lock = self._shm_lock  # acquire() and release(): half the cost of `with`
        try:
            lock.acquire()
            try:
                shm.send(request)
            finally:
                lock.release()
            self._shm_sent.append(request)
            self._shm_inflight = len(request)
            self._shm_unread += 1
        except ChannelError as exc:
            raise self._send_failed(exc) from None
        except BaseException:  # Ctrl-C between sending and noting it: as redis-py's send
            self.disconnect()
            raise

    def _send_command_otherwise(self, route: int, args: tuple, check_health: bool) -> None:
        if route != SHM or not self._shm_usable():
            self._note_socket_command(route, args)
            self._send_socket(self.pack_command(*args), 1, check_health)
        else:
            self._send_shm([self._pack(args)], check_health)

    def send_packed_command(self, command, check_health: bool = True) -> None:
        if not isinstance(command, routes.Batch):  # packed by someone else: the socket's
            if isinstance(command, (bytes, str)):
                command = [command]
            self._send_socket(command, routes.count_requests(command), check_health)
            return
        at = 0
        if command and command.routes[0] == SHM and self._shm_usable():
            while at < len(command) and command.routes[at] == SHM:
                at += 1
            self._send_shm(command[:at], check_health)
            check_health = False
        if at < len(command):
            for route, args in zip(command.routes[at:], command.args[at:], strict=True):
                self._note_socket_command(route, args)
            self._send_socket([b"".join(command[at:])], len(command) - at, check_health)

    def _shm_usable(self) -> bool:
        if self._socket_only_now():
            return False
        if self._rebind_pending:
            self._rebind_pending = False
            self._drop_session()
            self._session_tried = False
            self._start_session()
        return self._shm is not None

    def _send_socket(self, chunks, count: int, check_health: bool) -> None:
        """Send on the socket, once every reply the session owes is fetched."""
        if self._shm_sent:
            self._settle()
        if self._rebind_pending or self._pinned:
            self._drop_session()  # the old session's replies are all fetched
        super().send_packed_command(chunks, check_health=check_health)
        self._socket_unread += count
        self._socket_used = time.monotonic()

    def _send_shm(self, requests: list[bytes], check_health: bool) -> None:
        """Send through the session, one doorbell per chunk of requests."""
        if check_health and self.health_check_interval:
            self.check_health()
            if not self._shm_usable():  # the check reconnected, or the module is gone
                self._send_socket([b"".join(requests)], len(requests), False)
                return
        if (time.monotonic() - self._socket_used > KEEPALIVE_AFTER
                and not self._shm_unread):
            self._keep_socket_alive()
        sizes = list(map(len, requests))
        start, left = 0, sum(sizes)
        while start < len(requests):
            end, size = len(requests), left  # usually all at once
            if size > INFLIGHT_MAX:
                end, size = start + 1, sizes[start]
                while end < len(requests) and size + sizes[end] <= INFLIGHT_MAX:
                    size += sizes[end]
                    end += 1
            if self._shm_sent and self._shm_inflight + size > INFLIGHT_MAX:
                self._settle()
            chunk = requests[start:end]
            try:
                with self._shm_lock:
                    if len(chunk) == 1:
                        self._shm.send(chunk[0])
                    else:
                        self._shm.send_batch(chunk, sizes[start:end])
                self._sent(chunk, size)
            except ChannelError as exc:
                raise self._send_failed(exc) from None
            except BaseException:  # as above
                self.disconnect()
                raise
            start, left = end, left - size

    def _sent(self, requests: Sequence[bytes], size: int) -> None:
        """`requests` (`size` bytes) are in the session: their replies are owed."""
        self._shm_sent.extend(requests)
        self._shm_inflight += size
        self._shm_unread += len(requests)

    def _send_failed(self, exc: ChannelError) -> RedisError:
        """A send into the session failed: redis-py's error for a failed write."""
        self.disconnect()
        if isinstance(exc, ChannelTimeout):
            return RedisTimeoutError("Timeout writing to socket")
        return RedisConnectionError(f"Error while writing to socket. {exc}.")

    def _keep_socket_alive(self) -> None:
        """The server's `timeout` sees only the socket: while commands go
        through shared memory, a bare HELLO now and then keeps the
        connection as alive as the same traffic on the socket would."""
        self._socket_request("HELLO")

    # ---- reading ----

    def can_read(self, timeout: float = 0) -> bool:
        # The pool asks before handing the connection out.  Its usual answer,
        # nothing anywhere, costs one poll() here instead of redis-py's
        # several calls; anything else, redis-py's own can_read decides.
        if timeout == 0 and self._nothing_buffered() and not self._socket_poll.poll(0):
            return False
        return super().can_read(timeout)

    def _nothing_buffered(self) -> bool:
        """Whether no reply is waiting short of the socket: none owed by the
        session, none in redis-py's hiredis parser (another parser: unknown)."""
        return (self._sock is not None and not self._ready and not self._shm_sent
                and self._idle_hiredis() is not None)

    def _idle_hiredis(self):
        """The hiredis reader of redis-py's parser when it holds nothing
        unread; None when it does, or for another parser."""
        reader = self._hiredis_reader()
        return None if reader is None or reader.has_data() else reader

    def _hiredis_reader(self):
        """The hiredis reader of redis-py's parser, unless a reply waits
        outside it (one can_read() kept aside); None for another parser."""
        parser = self._parser
        if (type(parser) is not _HiredisParser
                or getattr(parser, "_next_response", _NOT_ENOUGH_DATA) is not _NOT_ENOUGH_DATA):
            return None
        return parser._reader

    def _feed_hiredis(self) -> None:
        """Hand the replies through shared memory to redis-py's hiredis
        reader before redis-py reads, so it finds the next one there instead
        of going through its read_from_socket and the socket view (about
        1 µs).  A failure to fetch is kept for the socket view to raise, where
        redis-py's read expects it and turns it into its own error."""
        reader = self._idle_hiredis()
        if reader is None:
            return
        ready, sent = self._ready, self._shm_sent
        try:
            if not ready and len(sent) == 1:  # the common case, without _fetch's loop
                lock = self._shm_lock
                try:
                    lock.acquire()
                    try:
                        data = self._shm.recv()
                    finally:
                        lock.release()
                except ChannelError as exc:
                    self._fetch_failed(exc)
                    return
                request = sent.popleft()
                self._shm_inflight = 0
                if data.startswith(FALLBACK):
                    self._refused(request)
                else:
                    reader.feed(data)
                return
            if not ready:
                self._fetch(everything=False)
        except OSError as exc:
            self._fetch_error = exc
            return
        while ready:
            reader.feed(ready.popleft())

    def read_response(self, disable_decoding=False, **kwargs):
        # Replies come in order: the session's first, then the socket's.  The
        # next one is to be fetched when the session owes all those unread
        # (else it was fetched with the ones before: a pipeline's).
        sent = self._shm_sent
        if self._ready or (sent and self._shm_unread <= len(sent)):
            try:
                self._feed_hiredis()
            except BaseException:  # Ctrl-C in the wait: as redis-py's own read does (its #1128)
                if kwargs.get("disconnect_on_error", True):
                    self.disconnect()
                raise
        # A session's reply that hiredis holds is taken here (redis-py's read
        # costs 0.3-0.4 µs more); not with health checks on: that read resets
        # their clock, and which clock differs by redis-py version.
        if self._shm_unread and not kwargs and not self.health_check_interval:
            reader = self._hiredis_reader()
            if reader is not None:
                try:
                    response = reader.gets(False) if disable_decoding else reader.gets()
                except BaseException:  # a reply hiredis cannot parse
                    self.disconnect()
                    raise
                if response is not _NOT_ENOUGH_DATA:  # what redis-py's read does with it
                    if type(response) not in routes.PLAIN_REPLIES and (
                            routes.push_or_connection_error(self._parser, response)):
                        return self._read_past(response, disable_decoding)
                    self._shm_unread -= 1  # a session's reply (the socket's come after them)
                    if isinstance(response, ResponseError):
                        raise response from None
                    return response
        try:  # (forwarding **kwargs costs 0.2 µs a reply: only when there are any)
            if kwargs:
                response = _read_response(self, disable_decoding, **kwargs)
            else:
                response = _read_response(self, disable_decoding)
        except ResponseError:
            if self._shm_unread:
                self._shm_unread -= 1
            elif self._socket_unread:
                self._socket_unread -= 1
            raise
        if self._shm_unread:
            self._shm_unread -= 1
        elif self._socket_unread:
            self._socket_unread -= 1
        return response

    def _read_past(self, response, disable_decoding: bool):
        """What redis-py's own read does with a push (hands it over and
        reads on) or a connection error (disconnects and raises it)."""
        if routes.is_push(self._parser, response):
            self._parser.handle_push_response(response)
            return self.read_response(disable_decoding)
        self.disconnect()
        raise routes.connection_error_in(response)

    def _shm_pending(self) -> bool:
        return bool(self._ready or self._shm_sent)

    def _shm_bytes(self, size: int, peek: bool):
        """Up to `size` bytes of the replies through shared memory, as many
        whole ones as fit (a pipeline's replies reach the parser in one
        read); None when the session owes none (the socket's bytes are
        next); b"" when the session ended, which redis-py reports as a
        closed connection."""
        error, self._fetch_error = self._fetch_error, None
        if error is not None:
            raise error
        ready = self._ready
        if not ready and self._shm_sent:
            self._fetch(everything=False)
        if not ready:
            return b"" if self._session_ended else None
        head = ready[0]
        if len(head) > size:
            if not isinstance(head, memoryview):
                head = ready[0] = memoryview(head)
            if not peek:
                ready[0] = head[size:]
            return head[:size]
        if peek or len(ready) == 1:
            if not peek:
                ready.popleft()
            return head
        parts, taken = [], 0
        while ready and taken + len(ready[0]) <= size:
            part = ready.popleft()
            parts.append(part)
            taken += len(part)
        return b"".join(parts)

    def _fetch(self, everything: bool) -> None:
        """Fetch replies the session owes (they were all sent, in order) into
        _ready: every one, or (for the parser) at least one and those already
        there, so a pipeline's first replies are parsed while the server
        runs the rest.  One C call per MiB at most; a refusal sends the
        refused request and those after it over the socket."""
        sent, lock = self._shm_sent, self._shm_lock
        while sent:
            try:
                lock.acquire()
                try:
                    if len(sent) == 1:  # the common case, without the batch's copy
                        data = self._shm.recv()
                        refused = data.startswith(FALLBACK)
                        got = 0 if refused else 1
                    else:
                        data, got, refused = self._shm.recv_many(len(sent), FALLBACK)
                finally:
                    lock.release()
            except ChannelError as exc:
                self._fetch_failed(exc)
                return
            if got:
                self._ready.append(data)
            if got == len(sent):
                sent.clear()
                self._shm_inflight = 0
            else:
                for _ in range(got):
                    self._shm_inflight -= len(sent.popleft())
            if refused:
                request = sent.popleft()
                self._shm_inflight -= len(request)
                self._refused(request)
            if got and not everything:
                return

    def _fetch_failed(self, exc: ChannelError) -> None:
        """A fetch failed: raises the socket's error for it, or, when the
        server ended the session, returns with it closed (redis-py then
        sees a closed connection)."""
        if isinstance(exc, ChannelTimeout):
            raise TimeoutError("timed out") from None  # socket.timeout
        if not isinstance(exc, ChannelClosed):
            raise ConnectionResetError(str(exc)) from None
        self._shm_sent.clear()
        self._drop_session()
        self._session_ended = True

    def _settle(self) -> None:
        """Fetch every reply the session owes, before the socket is used."""
        self._fetch(everything=True)
        if self._session_ended:
            raise RedisConnectionError("Connection closed by server.")

    def _refused(self, request: bytes) -> None:
        """The module refused `request`, and skipped those sent after it:
        they all go over the socket, in order, after the replies before them."""
        requests = [request, *self._shm_sent]
        shm = self._shm
        try:
            with self._shm_lock:
                for _ in self._shm_sent:
                    shm.recv()
                shm.resume()
        except ChannelError as exc:
            raise ConnectionResetError(str(exc)) from None
        self._shm_sent.clear()
        self._shm_inflight = 0
        self._shm_unread -= len(requests)
        super().send_packed_command([b"".join(requests)], check_health=False)
        self._socket_unread += len(requests)
        self._socket_used = time.monotonic()


class ShmConnection(_ShmRouting, _RedisConnection):
    """redis-py's TCP Connection with a shared-memory session (a local server)."""


class ShmUnixConnection(_ShmRouting, _RedisUnixConnection):
    """redis-py's UnixDomainSocketConnection with a shared-memory session."""


_SHM_CLASSES = ((_RedisUnixConnection, ShmUnixConnection), (_RedisConnection, ShmConnection))


class Redis(redis.Redis):
    """redis.Redis whose connections use shared memory where the server has
    the module; every argument is redis.Redis's."""

    def __init__(self, *args, single_connection_client: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        routes.use_shm_classes(self.connection_pool, _SHM_CLASSES)
        if single_connection_client:  # its connection comes from the pool as it is now
            auto_close = getattr(self, "auto_close_connection_pool", False)
            super().__init__(connection_pool=self.connection_pool, single_connection_client=True)
            self.auto_close_connection_pool = auto_close

    @classmethod
    def from_url(cls, url: str, **kwargs) -> Redis:
        """redis.Redis.from_url, also taking redis+shm:// and unix+shm://."""
        return super().from_url(routes.plain_url(url), **kwargs)


def from_url(url: str, **kwargs) -> Redis:
    """A client for `url` (redis://, unix://, or the same with "+shm") whose
    connections use shared memory where the server has the module."""
    return Redis.from_url(url, **kwargs)
