"""redis.asyncio over shared memory (shmcli.redis_py_asyncio), differential:
every reply, exception and behaviour is compared with redis.asyncio's own
connection over the unix socket of the same server, with both parsers and
both protocols; and the event loop is shown never to wait for the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest
import redis
import redis.asyncio
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis_py_helpers import in_forked_child, seen, shm_info
from reply_corpus import CORPUS
from servers import Server

from shmcli import redis_py_asyncio

PARSERS = {"hiredis": {2: _AsyncHiredisParser, 3: _AsyncHiredisParser},
           "python": {2: _AsyncRESP2Parser, 3: _AsyncRESP3Parser}}


async def outcome(awaitable):
    try:
        return seen(await awaitable)
    except (redis.RedisError, UnicodeDecodeError) as exc:
        return seen(exc)


async def borrow(pool: redis.asyncio.ConnectionPool):
    try:
        return await pool.get_connection()
    except TypeError:  # redis-py < 5.3 needs a command name
        return await pool.get_connection("PING")


async def transport_of(client: redis.asyncio.Redis) -> str:
    pool = client.connection_pool
    connection = await borrow(pool)
    try:
        return getattr(connection, "transport", "socket")  # redis.asyncio's own: its socket
    finally:
        await pool.release(connection)


def pair(server: Server, **options) -> tuple[redis.asyncio.Redis, redis.asyncio.Redis]:
    """redis.asyncio over its socket, and over shared memory, alike."""
    return (redis.asyncio.Redis(unix_socket_path=server.unix_socket, **options),
            redis_py_asyncio.Redis(unix_socket_path=server.unix_socket, **options))


@pytest.mark.parametrize("parser", list(PARSERS))
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
def test_every_reply_is_what_redis_asyncio_returns_over_its_socket(
        seeded: Server, parser: str, protocol: int, decode: bool) -> None:
    async def run() -> None:
        options = dict(path=seeded.unix_socket, protocol=protocol, decode_responses=decode,
                       parser_class=PARSERS[parser][protocol])
        plain, shm = (redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool(
            connection_class=cls, **options))
            for cls in (redis.asyncio.UnixDomainSocketConnection,
                        redis_py_asyncio.ShmUnixConnection))
        before = shm_info(seeded)["shm_commands"]
        for name, argv in CORPUS:
            assert await outcome(shm.execute_command(*argv)) == \
                await outcome(plain.execute_command(*argv)), name
        assert await transport_of(shm) == "shm"
        assert shm_info(seeded)["shm_commands"] - before > len(CORPUS) // 2
        for client in (plain, shm):  # their pools are not theirs to close
            await client.aclose()
            await client.connection_pool.disconnect()
    asyncio.run(run())


def test_pipelines_match_and_go_in_one_batch(server: Server) -> None:
    async def run() -> None:
        plain, shm = pair(server)
        results = {}
        for client, key in ((plain, "p"), (shm, "s")):
            before = shm_info(server)["shm_commands"]
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(2000):
                    pipe.incr(key)
                pipe.get(key).lpush(key, 1).get("missing").set(key + "big", "x" * 100_000)
                pipe.get(key + "big")
                # More than the bytes kept in flight (256 KiB): from here on, the socket's.
                pipe.set(key + "huge", "y" * 600_000).get(key + "huge").incr(key + "n")
                results[key] = (seen(await pipe.execute(raise_on_error=False)),
                                shm_info(server)["shm_commands"] - before)
        assert results["s"][0] == results["p"][0]
        assert results["p"][1] == 0 and results["s"][1] == 2005
        for client in (plain, shm):  # a transaction: the socket's, for both
            async with client.pipeline() as pipe:
                pipe.set("t", 1).incr("t").lpush("t", 1).get("t")
                results[client] = await outcome(pipe.execute())
        assert results[shm] == results[plain]
        await plain.aclose()
        await shm.aclose()
    asyncio.run(run())


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_reply_in_hand_is_handed_over_as_redis_asyncio_would(server: Server,
                                                                protocol: int) -> None:
    """A reply already there when redis-py starts reading is parsed without
    redis-py's read (and its timeout); what that read does with a reply
    still happens: raw replies stay raw, errors raise and leave the
    connection usable, and the health check's clock is reset."""
    async def read_in_hand(client: redis.asyncio.Redis, *args, **read_options):
        pool = client.connection_pool
        connection = await borrow(pool)
        try:
            await connection.send_command(*args)
            await asyncio.sleep(0.05)  # the reply is there before the read starts
            connection.next_health_check = -1
            started = asyncio.get_running_loop().time()
            result = await outcome(connection.read_response(**read_options))
            assert connection.next_health_check >= started + 1.0
            return result, getattr(connection, "transport", "socket")
        finally:
            await pool.release(connection)

    async def run() -> None:
        plain, shm = pair(server, protocol=protocol, decode_responses=True,
                          health_check_interval=1.0)
        await plain.set("k", "v")
        for args, options in ((("GET", "k"), {}), (("DUMP", "k"), {"disable_decoding": True}),
                              (("LPUSH", "k", 1), {}), (("GET", "k"), {})):
            seen_plain, _ = await read_in_hand(plain, *args, **options)
            seen_shm, transport = await read_in_hand(shm, *args, **options)
            assert seen_shm == seen_plain and transport == "shm", args
        await plain.aclose()
        await shm.aclose()
    asyncio.run(run())


def test_a_refused_command_and_the_rest_of_its_batch_go_over_the_socket(server: Server) -> None:
    async def run() -> None:
        shm = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)
        before = shm_info(server)["shm_refused"]
        async with shm.pipeline(transaction=False) as pipe:
            pipe.set("a", 1).incr("a")
            pipe.eval("return redis.call('INCR', KEYS[1])", 1, "a")  # scripts run on the socket
            pipe.incr("a").get("a")
            assert await pipe.execute() == [True, 2, 3, 4, b"4"]
        assert shm_info(server)["shm_refused"] > before
        assert await shm.get("a") == b"4"
        assert await transport_of(shm) == "shm"
        await shm.aclose()
    asyncio.run(run())


@contextlib.contextmanager
def stopped_for(server: Server, seconds: float):
    """The server stopped (SIGSTOP, every thread) for `seconds` of the
    running event loop, or until the block ends, whichever comes first."""
    server.freeze()
    thawing = asyncio.get_running_loop().call_later(seconds, server.thaw)
    try:
        yield
    finally:
        thawing.cancel()  # never to thaw a later stop
        server.thaw()


def test_the_event_loop_runs_while_a_reply_is_awaited(server: Server) -> None:
    """The server is stopped for 0.5 s: the request waits for it, and other
    tasks of the loop go on meanwhile (a blocking wait would stop them)."""
    async def run() -> None:
        shm = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)
        await shm.set("k", "v")
        assert await transport_of(shm) == "shm"
        ticks, done = 0, False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        with stopped_for(server, 0.5):
            started = ticks
            assert await shm.get("k") == b"v"
        done = True
        await ticking
        # About 50 ticks in 0.5 s; a wait that blocked the loop would allow none.
        assert ticks - started >= 5, (started, ticks)
        await shm.aclose()
    asyncio.run(run())


def test_a_command_cancelled_in_its_wait_leaves_no_reply_behind(server: Server) -> None:
    """A task cancelled while its GET waits for a stopped server: the next
    command on the same client gets its own reply, as over the socket."""
    async def run() -> list:
        outcomes = []
        for client in pair(server, single_connection_client=True):
            await client.set("k", "v")
            await client.set("other", "o")
            with stopped_for(server, 0.3):
                waiting = asyncio.create_task(client.get("k"))
                await asyncio.sleep(0.05)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
            outcomes.append([await client.get("other"), await client.get("k")])
            await client.aclose()
        return outcomes

    plain, shm = asyncio.run(run())
    assert plain == [b"o", b"v"] and shm == plain


def test_many_tasks_share_a_pool(server: Server) -> None:
    async def run() -> None:
        shm = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)

        async def worker(n: int) -> list:
            replies = []
            for i in range(100):
                replies.append(await shm.incr("shared"))
                replies.append(await shm.set(f"own:{n}", i))
                replies.append(await shm.get(f"own:{n}"))
            return replies

        results = await asyncio.gather(*(worker(n) for n in range(30)))
        assert await shm.get("shared") == b"3000"
        for replies in results:
            assert replies[2::3] == [str(i).encode() for i in range(100)]
        assert await transport_of(shm) == "shm"
        await shm.aclose()
    asyncio.run(run())


def test_a_timeout_is_redis_asyncios_timeout(make_server) -> None:
    srv = make_server("redis", "main-thread")

    async def run() -> list:
        outcomes = []
        for client in pair(srv, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)):
            await client.ping()
            with stopped_for(srv, 0.6):
                outcomes.append(await outcome(client.set("k", "v")))
            assert await client.set("k", "v")  # connects again
            await client.aclose()
        return outcomes

    plain, shm = asyncio.run(run())
    assert plain[0] is redis.TimeoutError and shm == plain


def test_blocking_commands_and_pubsub_use_the_socket(server: Server) -> None:
    async def run() -> None:
        shm = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)
        other = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)
        assert await shm.blpop(["q"], timeout=0.05) is None
        waiting = asyncio.create_task(shm.blpop(["q"], timeout=5))
        await asyncio.sleep(0.1)
        assert await other.rpush("q", "job") == 1  # through the other's session
        assert tuple(await waiting) == (b"q", b"job")
        pubsub = shm.pubsub()
        await pubsub.subscribe("ch")
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        assert await other.publish("ch", "hello") == 1
        message = await pubsub.get_message(timeout=5)
        assert (message["channel"], message["data"]) == (b"ch", b"hello")
        await pubsub.aclose()
        assert await transport_of(other) == "shm"
        await shm.aclose()
        await other.aclose()
    asyncio.run(run())


def test_without_the_module_the_socket_is_used(make_server,
                                               caplog: pytest.LogCaptureFixture) -> None:
    srv = make_server("redis", "main-thread", load_module=False)
    caplog.set_level(logging.INFO, logger="shmcli.redis_py")

    async def run() -> None:
        shm = redis_py_asyncio.Redis(unix_socket_path=srv.unix_socket)
        assert await shm.set("k", "v") and await shm.get("k") == b"v"
        assert await transport_of(shm) == "socket"
        await shm.aclose()
    asyncio.run(run())
    assert f"{srv.unix_socket} has no shm module: redis-py uses its socket" in [
        record.getMessage() for record in caplog.records]


def test_a_killed_connection_and_a_restarted_server(make_server) -> None:
    srv = make_server("redis", "main-thread")

    async def run() -> None:
        admin = redis.Redis(unix_socket_path=srv.unix_socket)
        outcomes = []
        for client in pair(srv, retry=Retry(NoBackoff(), 0), single_connection_client=True):
            await client.set("k", "v")
            admin.client_kill_filter(_id=await client.client_id())
            outcomes.append((await outcome(client.get("k")))[0])
            assert await client.get("k") == b"v"  # connects again: a new session
            await client.aclose()
        assert outcomes == [redis.ConnectionError, redis.ConnectionError]

        shm = redis_py_asyncio.Redis(unix_socket_path=srv.unix_socket,
                                     retry=Retry(NoBackoff(), 0))
        assert await shm.set("k", "v")
        srv.stop()
        with pytest.raises(redis.ConnectionError):
            await shm.get("k")
        srv.start()
        assert await shm.get("k") is None  # no persistence: the data is gone, the client is not
        assert await transport_of(shm) == "shm"
        await shm.aclose()
    asyncio.run(run())


async def until_the_stream_has(connection, what: str) -> None:
    """Until the loop has read a reply or the end of the socket into the
    connection's stream (redis-py >= 8's pool check looks no further)."""
    stream = connection._reader
    for _ in range(500):
        if stream._buffer if what == "a reply" else stream.at_eof():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {what} came on the socket in 5 s")


@pytest.mark.parametrize("left", ["a socket reply", "a session reply", "a killed client",
                                  "a restarted server"])
def test_the_pool_never_hands_out_a_connection_with_something_to_read(
        make_server, left: str) -> None:
    """The pool asks can_read_destructive() (redis-py < 8) or can_read()
    before each command; ShmConnection answers the usual "nothing" itself.
    A connection left with a reply unread, or closed by the server, is
    connected again without an error, as redis.asyncio's own is (no
    retries: the pool's check alone must see it)."""
    srv = make_server("redis", "main-thread")
    admin = redis.Redis(unix_socket_path=srv.unix_socket)

    async def run() -> list:
        results = []
        for client in pair(srv, retry=Retry(NoBackoff(), 0)):
            await client.mset({"k": "v", "stale": "stale"})
            pool = client.connection_pool
            connection = await borrow(pool)
            if left == "a socket reply":
                await connection.send_packed_command([b"*1\r\n$4\r\nPING\r\n"])  # the socket
                await until_the_stream_has(connection, "a reply")
            elif left == "a session reply":
                await connection.send_command("GET", "stale")  # its reply must never be GET k's
                if getattr(connection, "transport", "socket") == "socket":
                    await until_the_stream_has(connection, "a reply")
            elif left == "a killed client":
                await connection.send_command("CLIENT", "ID")
                admin.client_kill_filter(_id=await connection.read_response())
                await until_the_stream_has(connection, "end")
            else:
                srv.stop()
                srv.start()
                await client.set("k", "v")  # on a connection of its own
            await pool.release(connection)
            results.append((await outcome(client.get("k")), await transport_of(client)))
            await client.aclose()
        return results
    assert asyncio.run(run()) == [(b"v", "socket"), (b"v", "shm")]


def test_from_url_takes_shm_schemes(server: Server) -> None:
    async def run() -> None:
        for url in (f"unix+shm://{server.unix_socket}?db=2",
                    f"redis+shm://127.0.0.1:{server.port}/2"):
            client = redis_py_asyncio.from_url(url)
            assert await client.set("u", url) and await client.get("u") == url.encode()
            assert await transport_of(client) == "shm"
            await client.aclose()
        assert redis.Redis(unix_socket_path=server.unix_socket, db=2).get("u") == \
            f"redis+shm://127.0.0.1:{server.port}/2".encode()
    asyncio.run(run())


def test_connection_options_are_redis_asyncios(make_server) -> None:
    """db, username/password, client_name, health checks, credential
    providers and SELECT/AUTH sent by hand behave as over the socket."""
    srv = make_server("redis", "main-thread")
    admin = redis.Redis(unix_socket_path=srv.unix_socket)
    admin.acl_setuser("app", enabled=True, passwords=["+secret"], keys=["*"],
                      commands=["+@all"])
    admin.acl_setuser("other", enabled=True, passwords=["+pw"], keys=["o:*"],
                      commands=["+@all"])

    async def run() -> None:
        options = dict(username="app", password="secret", client_name="worker-1")
        plain, shm = pair(srv, db=3, health_check_interval=0.2, **options)
        assert await shm.set("k", "in-db-3")
        assert await transport_of(shm) == "shm"
        assert redis.Redis(unix_socket_path=srv.unix_socket, db=3).get("k") == b"in-db-3"
        assert admin.get("k") is None
        assert await shm.client_getname() == await plain.client_getname()
        assert await shm.acl_whoami() == await plain.acl_whoami()
        await asyncio.sleep(0.3)  # past the health check interval: a PING first
        assert await shm.get("k") == b"in-db-3"

        from redis.credentials import UsernamePasswordCredentialProvider
        provided = redis_py_asyncio.Redis(unix_socket_path=srv.unix_socket, credential_provider=(
            UsernamePasswordCredentialProvider("app", "secret")))
        assert await provided.acl_whoami() == await plain.acl_whoami()
        assert await transport_of(provided) == "shm"
        wrong = pair(srv, username="app", password="wrong")
        failed = [await outcome(client.ping()) for client in wrong]
        assert failed[1] == failed[0] and issubclass(failed[0][0], redis.ConnectionError)

        single = redis_py_asyncio.Redis(unix_socket_path=srv.unix_socket,
                                        single_connection_client=True)
        await single.execute_command("SELECT", 4)
        await single.set("k", "db4")
        assert single.connection.transport == "shm"
        assert redis.Redis(unix_socket_path=srv.unix_socket, db=4).get("k") == b"db4"
        await single.execute_command("AUTH", "other", "pw")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await single.set("k", "denied")  # the new session runs as the new user
        assert await single.set("o:k", "ok")
        assert single.connection.transport == "shm"
        for client in (plain, shm, provided, *wrong, single):
            await client.aclose()
    asyncio.run(run())


def test_a_forked_child_never_uses_its_parents_session(server: Server) -> None:
    """A child forked while an asyncio client holds a session: the inherited
    connection keeps to its socket; a client the child makes opens its own
    session; the parent's goes on, on the same session."""
    async def child(inherited) -> str:
        own = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)
        value = await own.get("k")
        report = f"{inherited.transport} {value!r} {await transport_of(own)}"
        await own.aclose()
        return report

    def in_child(inherited) -> str:
        reports = []  # a thread of its own: the forked loop is the parent's, still "running"
        thread = threading.Thread(target=lambda: reports.append(asyncio.run(child(inherited))))
        thread.start()
        thread.join()
        return reports[0]

    async def run() -> None:
        shm = redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)
        await shm.set("k", "parent")
        assert await transport_of(shm) == "shm"
        opened = shm_info(server)["shm_sessions_opened"]
        inherited = shm.connection_pool._available_connections[0]
        assert in_forked_child(lambda: in_child(inherited)) == "socket b'parent' shm"
        assert shm_info(server)["shm_sessions_opened"] == opened + 1
        assert await shm.set("k", "still the parent's")
        assert await shm.get("k") == b"still the parent's"
        assert await transport_of(shm) == "shm"
        assert shm_info(server)["shm_sessions_opened"] == opened + 1  # the same session
        await shm.aclose()
    asyncio.run(run())
