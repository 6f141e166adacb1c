"""redis.asyncio over the shared-memory channel: one line changes.

    r = redis.asyncio.Redis(unix_socket_path="/run/redis/redis.sock")              # before
    r = shmcli.redis_py_asyncio.Redis(unix_socket_path="/run/redis/redis.sock")    # after

or ``redis.asyncio.ConnectionPool(connection_class=ShmUnixConnection, path=...)``,
or ``shmcli.redis_py_asyncio.from_url("unix+shm://...")``.

The twin of shmcli.redis_py, with the same routing (shmcli.redis_py_routes)
and the same rules: redis-py connects, authenticates and selects over its
socket; a bare HELLO asks for the module; SHM.HANDSHAKE opens a session; a
command goes through the session when the socket owes no reply, and every
reply the session owes is handed over before anything is sent on the socket.

What differs is the waiting, since an event loop must never block.  Nothing
here spins or sleeps in C: replies are read without waiting, and are fed
into the connection's own StreamReader, from which redis-py's parser (and
its timeouts) reads them as if the socket had carried them.  With the
hiredis parser, replies nothing is before and no read waits for go straight
into its reader instead, and read_response parses them there and does with
them what redis-py's read does: that read would first set up its timeout
(4-5 µs a reply, which cannot fire when nothing is awaited).  While replies
are owed, a pump looks for them: when redis-py starts reading (a fast
server's reply is often there already, and then redis-py's read needs no
turn of the loop), then for a few tens of µs on each turn of the loop (other
tasks run in between), then it arms the session's wake-up, and the server
sends one byte on the session's socket with the next reply (loop.add_reader).
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections import deque

import redis.asyncio
from redis.asyncio.connection import Connection as _AsyncConnection
from redis.asyncio.connection import UnixDomainSocketConnection as _AsyncUnixConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import redis_py_routes as routes
from .channel import ChannelClosed, ChannelError, ShmChannel
from .redis_py_pack import quick_packer
from .redis_py_routes import FALLBACK, INFLIGHT_MAX, KEEPALIVE_AFTER, SHM, SOCKET, RouteState

__all__ = ["Redis", "ShmConnection", "ShmUnixConnection", "from_url"]

log = logging.getLogger("shmcli.redis_py")

try:  # what read_response needs to hand over a reply already in hand itself
    from hiredis import Reader as _HiredisReader
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _AsyncHiredisParser
    if not hasattr(_HiredisReader(), "has_data"):
        raise ImportError("hiredis too old to say whether it holds data")
except ImportError:
    _AsyncHiredisParser = None

# How long the pump looks for a reply on each turn of the loop before it
# arms the wake-up (which costs the server a send and us a loop wake-up).
LOOK_FOR = 50e-6
# A request's share of the ring, beyond its bytes: record headers and
# alignment (a request fragments into a few records at most: it is at most
# half the ring).
_RECORD_COST = 64


class _AsyncShmRouting(RouteState):
    """What the asyncio ShmConnection and ShmUnixConnection add to redis-py's."""

    def __init__(self, *args, **kwargs) -> None:
        self._shm: ShmChannel | None = None
        self._socket_poll: tuple[int, select.poll] | None = None  # (fd, poll of it)
        self._reset_routing()
        super().__init__(*args, **kwargs)
        self._pack = quick_packer(self)

    def _reset_routing(self) -> None:
        self._reset_route_state()
        self._owed: deque[bytes] = deque()  # requests whose replies are not yet fed
        self._owed_bytes = 0
        self._capacity = 0            # bytes in flight the request ring always has room for
        self._shm_unread = 0          # replies fed or owed that redis-py has not read
        self._refusing: list[bytes] = []  # refused requests, for the socket
        self._pump_handle: asyncio.Handle | None = None  # the pump's scheduled call
        self._armed_fd = -1           # the session socket the loop watches, or -1
        self._armed_loop: asyncio.AbstractEventLoop | None = None
        self._looking_since = 0.0
        self._fed_waiters: list[asyncio.Future] = []
        self._socket_used = time.monotonic()

    @property
    def transport(self) -> str:
        """"shm" while commands go through shared memory, else "socket"."""
        return "shm" if self._shm is not None else "socket"

    # ---- connecting ----

    async def on_connect(self) -> None:
        await super().on_connect()
        await self._start_session()

    async def on_connect_check_health(self, *args, **kwargs) -> None:  # redis-py >= 6
        await super().on_connect_check_health(*args, **kwargs)
        await self._start_session()

    async def _socket_request(self, *args) -> object:
        """One command over the socket and its reply; an error reply is
        returned, not raised (nor does it close the connection)."""
        await super().send_packed_command(self.pack_command(*args), check_health=False)
        self._socket_used = time.monotonic()
        try:
            return await super().read_response(disconnect_on_error=False)
        except RedisError as exc:
            if not self.is_connected:
                raise
            return exc

    async def _start_session(self) -> None:
        if self._session_tried or not self.is_connected:
            return
        self._session_tried = True
        self._rebind_pending = False
        hello = await self._socket_request("HELLO")
        if isinstance(hello, RedisError):
            return
        address = self._host_error()
        if not routes.lists_shm_module(hello):
            if address not in routes.logged_without_module:
                routes.logged_without_module.add(address)
                log.warning("%s has no shm module: redis-py uses its socket", address)
            return
        reply = await self._socket_request("SHM.HANDSHAKE")
        session = routes.session_address(reply)
        if session is None:
            log.info("%s: no shared-memory session (%s); using the socket", address,
                     routes.refusal(reply))
            return
        token, path, ring_size = session
        try:
            self._shm = ShmChannel(path, token, ring_size, self.socket_timeout)
        except ChannelError as exc:
            log.info("%s: no shared-memory session (%s); using the socket", address, exc)
            return
        self._capacity = min(INFLIGHT_MAX, ring_size // 2)
        routes.live.add(self)

    def _drop_session(self) -> None:
        shm, self._shm = self._shm, None
        self._disarm_reader()
        if shm is not None:
            shm.close()
        for waiter in self._fed_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._fed_waiters.clear()

    async def disconnect(self, *args, **kwargs) -> None:
        self._drop_session()
        self._reset_routing()
        await super().disconnect(*args, **kwargs)

    # ---- sending ----

    def pack_commands(self, commands):
        return routes.pack_batch(self._pack, commands)

    async def send_command(self, *args, **kwargs) -> None:
        check_health = kwargs.get("check_health", True)
        try:
            route = routes.route_cache[args[0]]
        except (KeyError, TypeError, IndexError):
            route = routes.route(args[0]) if args else SOCKET
        if route == SHM and self._shm_free_now(check_health):
            request = self._pack(args)  # the common case, without awaiting anything
            size = len(request) + _RECORD_COST
            if size <= self._capacity - self._owed_bytes:
                failure = self._put([request], size, look_now=False)  # redis-py reads next
                if failure is not None:
                    await self._write_failed(failure)
                return
        if route != SHM:
            self._note_socket_command(route, args)
            await self._send_socket(self.pack_command(*args), 1, check_health)
            return
        usable = await self._shm_usable(check_health)
        request = self._pack(args)
        if usable and len(request) + _RECORD_COST <= self._capacity:
            await self._send_shm([request])
        else:
            await self._send_socket([request], 1, False)  # _shm_usable() checked the health

    async def send_packed_command(self, command, check_health: bool = True) -> None:
        if not isinstance(command, routes.Batch):  # packed by someone else: the socket's
            if isinstance(command, (bytes, str)):
                command = [command]
            await self._send_socket(command, routes.count_requests(command), check_health)
            return
        at = 0
        if command and command.routes[0] == SHM and await self._shm_usable(check_health):
            while (at < len(command) and command.routes[at] == SHM
                   and len(command[at]) + _RECORD_COST <= self._capacity):
                at += 1
            await self._send_shm(command[:at])
        if command and command.routes[0] == SHM:
            check_health = False  # _shm_usable() did it
        if at < len(command):
            for route, args in zip(command.routes[at:], command.args[at:], strict=True):
                self._note_socket_command(route, args)
            await self._send_socket([b"".join(command[at:])], len(command) - at, check_health)

    def _shm_free_now(self, check_health: bool) -> bool:
        """Whether the session may take a request with nothing to await
        first: connected, nothing holding the socket, no health check and
        no keep-alive due (_shm_usable does those)."""
        return (self._shm is not None and self.is_connected
                and not (self._socket_held or self._socket_unread or self._rebind_pending)
                and not (check_health and self.health_check_interval)
                and time.monotonic() - self._socket_used <= KEEPALIVE_AFTER)

    async def _shm_usable(self, check_health: bool) -> bool:
        """Connected, health-checked, and free to use the session now."""
        if not self.is_connected:
            await self.connect()
        elif check_health and self.health_check_interval:
            await self.check_health()
        if self._socket_only_now():
            return False
        if self._rebind_pending:
            await self._settle()
            self._drop_session()
            self._session_tried = False
            await self._start_session()
        elif (time.monotonic() - self._socket_used > KEEPALIVE_AFTER and self._shm is not None
              and not self._shm_unread):
            await self._socket_request("HELLO")  # the server's `timeout` sees only the socket
        return self._shm is not None

    async def _send_socket(self, chunks, count: int, check_health: bool) -> None:
        """Send on the socket, once every reply the session owes is fed."""
        await self._settle()
        if self._rebind_pending or self._pinned:
            self._drop_session()
        await super().send_packed_command(chunks, check_health=check_health)
        self._socket_unread += count
        self._socket_used = time.monotonic()

    async def _send_shm(self, requests: list[bytes]) -> None:
        """Send through the session, in chunks the request ring always has
        room for: the bytes in flight stay within half of it, so a send
        never waits (each request fits: bigger ones use the socket)."""
        start = 0
        while start < len(requests):
            end, size = start, 0
            while end < len(requests) and (
                    size + len(requests[end]) + _RECORD_COST <= self._capacity - self._owed_bytes):
                size += len(requests[end]) + _RECORD_COST
                end += 1
            if end == start:  # the ring holds too much: wait for the replies
                await self._settle()
                if self._shm is None:
                    raise RedisConnectionError("Connection closed by server.")
                continue
            failure = self._put(requests[start:end], size)
            if failure is not None:
                await self._write_failed(failure)
            start = end

    def _put(self, chunk: list[bytes], size: int, look_now: bool = True) -> ChannelError | None:
        """Send `chunk` (`size` bytes of the ring, which has room for them)
        with one doorbell; their replies are owed, and looked for from the
        loop's next turn on (look_now), or once redis-py starts reading.
        The error, if it failed."""
        try:
            if len(chunk) == 1:
                self._shm.send(chunk[0])
            else:
                self._shm.send_batch(chunk)
        except ChannelError as exc:
            return exc
        self._owed.extend(chunk)
        self._owed_bytes += size
        self._shm_unread += len(chunk)
        self._looking_since = time.perf_counter()
        if look_now:
            self._schedule_pump()
        return None

    async def _write_failed(self, exc: ChannelError) -> None:
        await self.disconnect(nowait=True)
        raise RedisConnectionError(f"Error while writing to socket. {exc}.") from None

    async def _settle(self) -> None:
        """Wait until every reply the session owes is fed to the stream."""
        if not self._owed and not self._refusing:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._fed_waiters.append(waiter)
        self._schedule_pump()
        try:
            await asyncio.wait_for(waiter, self.socket_timeout)
        except asyncio.TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None

    # ---- the pump: replies into the stream, never waiting ----

    def _schedule_pump(self) -> None:
        if self._pump_handle is None and self._armed_fd < 0:
            self._pump_handle = asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Feed the replies that are there to redis-py, never waiting."""
        self._pump_handle = None
        shm, stream = self._shm, self._reader
        if shm is None or stream is None or getattr(stream, "_eof", False):
            return  # disconnected, or the socket closed: the parser reports that
        owed = self._owed
        hiredis = self._feedable_hiredis()  # read_response then parses them where they are
        feed = stream.feed_data if hiredis is None else hiredis.feed
        try:
            while owed:
                data, got, refused = shm.recv_many(len(owed), FALLBACK, wait=False)
                if got:
                    feed(data)
                    for _ in range(got):
                        self._owed_bytes -= len(owed.popleft()) + _RECORD_COST
                    self._looking_since = time.perf_counter()  # more may be on the way
                if refused:
                    request = owed.popleft()
                    self._owed_bytes -= len(request) + _RECORD_COST
                    self._refusing.append(request)
                if not got and not refused:
                    break
            if not owed:
                self._owed_bytes = 0
                if self._refusing:
                    self._replay_refused()
                self._all_fed()
                return
            if time.perf_counter() - self._looking_since < LOOK_FOR:
                self._schedule_pump()  # look again on the loop's next turn
            elif shm.arm_socket_wake():
                self._schedule_pump()  # it came meanwhile
            else:
                self._armed_fd = shm.control_fd()
                self._armed_loop = asyncio.get_running_loop()
                self._armed_loop.add_reader(self._armed_fd, self._woken)
        except ChannelClosed:
            self._session_gone()
        except ChannelError as exc:
            self._shm_failed(exc)

    def _woken(self) -> None:
        self._disarm_reader()
        try:
            if self._shm is not None:
                self._shm.disarm_socket_wake()
        except ChannelClosed:
            self._session_gone()
            return
        except ChannelError as exc:
            self._shm_failed(exc)
            return
        self._pump()

    def _disarm_reader(self) -> None:
        if self._armed_fd >= 0:
            if not self._armed_loop.is_closed():
                self._armed_loop.remove_reader(self._armed_fd)
            self._armed_fd, self._armed_loop = -1, None

    def _replay_refused(self) -> None:
        """The module refused a request and skipped those after it (their
        markers are all read): they go over the socket, in order, after the
        replies before them, which are in the stream already."""
        requests, self._refusing = self._refusing, []
        try:
            self._shm.resume()
        except ChannelError as exc:
            self._shm_failed(exc)
            return
        self._shm_unread -= len(requests)
        self._writer.write(b"".join(requests))
        self._socket_unread += len(requests)
        self._socket_used = time.monotonic()

    def _all_fed(self) -> None:
        for waiter in self._fed_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._fed_waiters.clear()

    def _session_gone(self) -> None:
        """The server ended the session: redis-py reads a closed connection."""
        self._owed.clear()
        self._drop_session()
        self._session_ended = True
        if self._reader is not None:
            self._reader.feed_eof()

    def _shm_failed(self, exc: ChannelError) -> None:
        self._owed.clear()
        self._drop_session()
        if self._reader is not None:
            self._reader.set_exception(ConnectionResetError(str(exc)))

    # ---- reading ----

    # The pool asks before handing the connection out: a reply the session
    # owes is there to read (the pool then connects it again, as it does a
    # socket with a reply left on it), however far it got.

    async def can_read(self) -> bool:  # redis-py >= 8
        if self._owed or self._shm_unread:
            return True
        return await super().can_read()

    async def can_read_destructive(self) -> bool:  # redis-py 5-7
        # redis-py's hiredis parser answers by reading under a zero timeout
        # (a timer and a turn of the loop: about 3 µs).  Its usual answer,
        # nothing anywhere, costs one poll() here; anything else, redis-py
        # decides.
        if self._owed or self._shm_unread:
            return True
        if self._nothing_buffered():
            return False
        return await super().can_read_destructive()

    def _nothing_buffered(self) -> bool:
        """Whether no reply waits short of the session: none in the stream
        or redis-py's hiredis reader (another parser: unknown), no end of
        the stream, and none on the socket."""
        hiredis = self._feedable_hiredis()
        stream = self._reader
        if (hiredis is None or hiredis.has_data() or stream.at_eof()
                or stream.exception() is not None):
            return False
        sock = self._writer.transport.get_extra_info("socket") if self._writer else None
        if sock is None:
            return False
        fd = sock.fileno()
        if self._socket_poll is None or self._socket_poll[0] != fd:
            poll = select.poll()
            poll.register(fd, select.POLLIN)
            self._socket_poll = (fd, poll)
        return not self._socket_poll[1].poll(0)

    async def read_response(self, disable_decoding=False, **kwargs):
        # Replies come in order: the session's first, then the socket's.
        hiredis = self._feedable_hiredis() if self._shm_unread and not kwargs else None
        if self._owed and self._armed_fd < 0 and (hiredis is None or not hiredis.has_data()):
            pump = self._pump_handle  # look for owed replies now, not a turn later
            if pump is not None:
                pump.cancel()
            self._pump()
        if hiredis is not None:
            try:
                response = hiredis.gets(False) if disable_decoding else hiredis.gets()
            except BaseException:
                await self.disconnect(nowait=True)  # a reply hiredis cannot parse
                raise
            if response is not _NOT_ENOUGH_DATA:  # what redis-py's read_response does with it
                if type(response) not in routes.PLAIN_REPLIES and (
                        routes.push_or_connection_error(self._parser, response)):
                    return await self._read_past(response, disable_decoding)
                if self.health_check_interval:
                    self.next_health_check = (asyncio.get_running_loop().time()
                                              + self.health_check_interval)
                self._shm_unread -= 1  # a session's reply (the socket's come after them)
                if isinstance(response, ResponseError):
                    raise response from None
                return response
        try:  # (forwarding **kwargs costs 0.2 µs a reply: only when there are any)
            if kwargs:
                response = await super().read_response(disable_decoding, **kwargs)
            else:
                response = await super().read_response(disable_decoding)
        except ResponseError:
            self._count_read()
            raise
        self._count_read()
        return response

    def _feedable_hiredis(self):
        """redis-py's hiredis reader when replies may be fed to it and read
        from it here: the parser is hiredis, connected, and its stream holds
        nothing (that would come first) and has no reader waiting (which only
        the stream wakes); else None."""
        parser = self._parser
        if type(parser) is not _AsyncHiredisParser or not parser._connected:
            return None
        stream = self._reader
        if stream is None or stream._buffer or stream._waiter is not None:
            return None
        return parser._reader

    async def _read_past(self, response, disable_decoding: bool):
        """What redis-py's own read does with a push (hands it over and
        reads on) or a connection error (disconnects and raises it)."""
        if routes.is_push(self._parser, response):
            await self._parser.handle_push_response(response)
            return await self.read_response(disable_decoding)
        await self.disconnect(nowait=True)
        raise routes.connection_error_in(response)

    def _count_read(self) -> None:
        if self._shm_unread:
            self._shm_unread -= 1
        elif self._socket_unread:
            self._socket_unread -= 1


class ShmConnection(_AsyncShmRouting, _AsyncConnection):
    """redis.asyncio's TCP Connection with a shared-memory session (a local server)."""


class ShmUnixConnection(_AsyncShmRouting, _AsyncUnixConnection):
    """redis.asyncio's UnixDomainSocketConnection with a shared-memory session."""


_SHM_CLASSES = ((_AsyncUnixConnection, ShmUnixConnection), (_AsyncConnection, ShmConnection))


class Redis(redis.asyncio.Redis):
    """redis.asyncio.Redis whose connections use shared memory where the
    server has the module; every argument is redis.asyncio.Redis's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        routes.use_shm_classes(self.connection_pool, _SHM_CLASSES)

    @classmethod
    def from_url(cls, url: str, **kwargs) -> Redis:
        """redis.asyncio.Redis.from_url, also taking redis+shm:// and unix+shm://."""
        return super().from_url(routes.plain_url(url), **kwargs)


def from_url(url: str, **kwargs) -> Redis:
    """A client for `url` (redis://, unix://, or the same with "+shm") whose
    connections use shared memory where the server has the module."""
    return Redis.from_url(url, **kwargs)
