"""redis-py over shared memory (shmcli.redis_py, issue 13), differential:
every reply, exception and behaviour is compared with redis-py's own
connection over the unix socket of the same server, with both of redis-py's
parsers (hiredis and Python), RESP2 and RESP3.  The module's INFO counters
show which commands went through shared memory."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
import redis
from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_py_helpers import in_forked_child, seen, shm_info
from reply_corpus import CORPUS
from servers import Server

from shmcli import redis_py

PARSERS = {"hiredis": {2: _HiredisParser, 3: _HiredisParser},
           "python": {2: _RESP2Parser, 3: _RESP3Parser}}


def shm_commands(server: Server) -> int:
    return shm_info(server)["shm_commands"]


def connection_from(pool: redis.ConnectionPool) -> redis.connection.AbstractConnection:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py < 5.3 needs a command name
        return pool.get_connection("PING")


def transport_of(client: redis.Redis) -> str:
    """What the client's pool hands out carries commands over."""
    pool = client.connection_pool
    connection = connection_from(pool)
    try:
        return getattr(connection, "transport", "socket")  # redis-py's own: its socket
    finally:
        pool.release(connection)


def outcome(call):
    """A call's result, or its exception: what a caller sees."""
    try:
        return seen(call())
    except (redis.RedisError, UnicodeDecodeError) as exc:
        return seen(exc)


@pytest.mark.parametrize("parser", list(PARSERS))
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
def test_every_reply_is_what_redis_py_returns_over_its_socket(
        seeded: Server, parser: str, protocol: int, decode: bool) -> None:
    options = dict(path=seeded.unix_socket, protocol=protocol, decode_responses=decode,
                   parser_class=PARSERS[parser][protocol])
    plain, shm = (redis.Redis(connection_pool=redis.ConnectionPool(connection_class=cls,
                                                                   **options))
                  for cls in (redis.UnixDomainSocketConnection, redis_py.ShmUnixConnection))
    before = shm_commands(seeded)
    for name, argv in CORPUS:
        assert outcome(lambda a=argv: shm.execute_command(*a)) == \
            outcome(lambda a=argv: plain.execute_command(*a)), name
    assert transport_of(shm) == "shm"
    assert shm_commands(seeded) - before > len(CORPUS) // 2
    plain.close()
    shm.close()


def test_typed_commands_and_their_exceptions_match(server: Server) -> None:
    plain = redis.Redis(unix_socket_path=server.unix_socket, decode_responses=True)
    shm = redis_py.Redis(unix_socket_path=server.unix_socket, decode_responses=True)
    for client, prefix in ((plain, "p:"), (shm, "s:")):
        client.hset(prefix + "h", mapping={"a": 1, "b": "x"})
        client.zadd(prefix + "z", {"m1": 1.5, "m2": 2})
        client.set(prefix + "n", 41)
    checks = [
        lambda c, p: c.hgetall(p + "h"), lambda c, p: c.zrange(p + "z", 0, -1, withscores=True),
        lambda c, p: c.incr(p + "n"), lambda c, p: c.exists(p + "h", p + "nope"),
        lambda c, p: c.lpush(p + "h", 1), lambda c, p: c.incr(p + "h"),
        lambda c, p: c.ttl(p + "n"), lambda c, p: c.type(p + "z"),
        lambda c, p: c.execute_command("NOSUCH", "x"), lambda c, p: c.get(p + "missing"),
        lambda c, p: c.scan(0, match=p + "*", count=1000)[1].sort(),
    ]
    for check in checks:
        assert outcome(lambda f=check: f(shm, "s:")) == outcome(lambda f=check: f(plain, "p:"))


def test_a_pipeline_goes_through_shared_memory_in_one_batch(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    plain = redis.Redis(unix_socket_path=server.unix_socket)
    results = {}
    for client, key in ((plain, b"p"), (shm, b"s")):
        before = shm_commands(server)
        with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.incr(key)
            pipe.get(key).lpush(key, 1).get(b"missing")
            results[key] = (pipe.execute(raise_on_error=False), shm_commands(server) - before)
    (plain_replies, plain_shm), (shm_replies, shm_count) = results[b"p"], results[b"s"]
    assert seen(shm_replies) == seen(plain_replies)
    assert plain_shm == 0 and shm_count == 103


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_reply_in_hand_is_handed_over_as_redis_py_would(server: Server,
                                                           protocol: int) -> None:
    """Replies hiredis already holds are taken without redis-py's read; what
    that read does with a reply still happens: raw replies stay raw (DUMP
    with decoded responses), errors raise and leave the connection usable,
    and with health checks on, redis-py's read resets their clock."""
    def run(client: redis.Redis) -> list:
        seen_here = [outcome(lambda: client.set("k", "v")), outcome(lambda: client.dump("k")),
                     outcome(lambda: client.lpush("k", 1)), outcome(lambda: client.get("k"))]
        with client.pipeline(transaction=False) as pipe:
            pipe.get("k").lpush("k", 1).dump("k").set("n", 5).incr("n")
            seen_here.append(seen(pipe.execute(raise_on_error=False)))
        return seen_here

    options = dict(unix_socket_path=server.unix_socket, protocol=protocol, decode_responses=True)
    plain, shm = redis.Redis(**options), redis_py.Redis(**options)
    assert run(shm) == run(plain)
    assert transport_of(shm) == "shm"

    checked = redis_py.Redis(health_check_interval=60, **options)
    connection = connection_from(checked.connection_pool)
    assert connection.transport == "shm"
    connection.next_health_check = -1
    connection.send_command("GET", "k")
    assert connection.read_response() == "v"
    assert connection.next_health_check > 0  # reset, on redis-py's clock
    checked.connection_pool.release(connection)


def test_a_refused_command_and_the_rest_of_its_batch_go_over_the_socket(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    before = shm_info(server)["shm_refused"]
    with shm.pipeline(transaction=False) as pipe:
        pipe.set("a", 1).incr("a")
        pipe.eval("return redis.call('INCR', KEYS[1])", 1, "a")  # scripts run on the socket
        pipe.incr("a").get("a")
        assert pipe.execute() == [True, 2, 3, 4, b"4"]
    assert shm_info(server)["shm_refused"] > before
    assert shm.get("a") == b"4"
    assert transport_of(shm) == "shm"


def test_a_refused_single_command_goes_over_the_socket(server: Server) -> None:
    script = "return {redis.call('INCR', KEYS[1]), 'done'}"  # scripts run on the socket
    replies = {}
    for cls in (redis.Redis, redis_py.Redis):
        client = cls(unix_socket_path=server.unix_socket)
        client.set("a", 1)
        before = shm_info(server)["shm_refused"]
        replies[cls] = [client.eval(script, 1, "a"), client.incr("a"),
                        shm_info(server)["shm_refused"] - before]
    assert replies[redis.Redis] == [[2, b"done"], 3, 0]
    assert replies[redis_py.Redis][:2] == [[2, b"done"], 3]
    assert replies[redis_py.Redis][2] == 1
    assert transport_of(client) == "shm"


def test_transactions_and_watch_behave_as_over_the_socket(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    other = redis.Redis(unix_socket_path=server.unix_socket)
    with shm.pipeline() as pipe:
        assert pipe.set("k", 1).incr("k").get("k").execute() == [True, 2, b"2"]
    with shm.pipeline() as pipe:
        pipe.watch("k")
        assert pipe.get("k") == b"2"
        other.set("k", "changed")  # another client writes: EXEC must fail
        pipe.multi()
        pipe.set("k", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert shm.get("k") == b"changed"
    with shm.pipeline() as pipe:  # an error inside the transaction
        pipe.set("l", 1).lpush("l", 1).incr("l")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            pipe.execute()
    assert shm.get("l") == b"2"


def test_blocking_commands_pubsub_and_monitor_use_the_socket(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    assert shm.blpop(["q"], timeout=0.05) is None
    pusher = threading.Timer(0.2, lambda: redis.Redis(unix_socket_path=server.unix_socket)
                             .rpush("q", "job"))
    pusher.start()
    assert shm.blpop(["q"], timeout=5) == (b"q", b"job")
    pusher.join()

    pubsub = shm.pubsub()
    pubsub.subscribe("ch")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert shm.publish("ch", "hello") == 1
    message = pubsub.get_message(timeout=5)
    assert (message["channel"], message["data"]) == (b"ch", b"hello")
    pubsub.close()

    with shm.monitor() as monitor:
        redis.Redis(unix_socket_path=server.unix_socket).set("seen", "1")
        for command in monitor.listen():
            if "seen" in command["command"]:
                break
    assert shm.get("seen") == b"1"


def test_client_side_tracking_stays_on_the_socket(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket, protocol=3,
                         single_connection_client=True)
    shm.set("t", "1")
    assert shm.connection.transport == "shm"
    shm.client_tracking_on()
    assert shm.get("t") == b"1"
    assert shm.connection.transport == "socket"  # invalidations belong to the socket's client
    shm.close()


def test_connection_options_are_redis_pys(make_server) -> None:
    srv = make_server("redis", "main-thread")
    admin = redis.Redis(unix_socket_path=srv.unix_socket)
    admin.acl_setuser("app", enabled=True, passwords=["+secret"], keys=["*"],
                      commands=["+@all"])
    shm = redis_py.Redis(unix_socket_path=srv.unix_socket, db=3, username="app",
                         password="secret", client_name="worker-1",
                         health_check_interval=1)
    shm.set("k", "in-db-3")
    assert transport_of(shm) == "shm"
    assert redis.Redis(unix_socket_path=srv.unix_socket, db=3).get("k") == b"in-db-3"
    assert admin.get("k") is None
    plain = redis.Redis(unix_socket_path=srv.unix_socket, username="app", password="secret",
                        client_name="worker-1")
    assert shm.client_getname() == plain.client_getname()
    assert shm.acl_whoami() == plain.acl_whoami()
    time.sleep(1.1)  # past the health check interval: a PING first, then the command
    assert shm.get("k") == b"in-db-3"

    from redis.credentials import UsernamePasswordCredentialProvider
    provided = redis_py.Redis(unix_socket_path=srv.unix_socket, credential_provider=(
        UsernamePasswordCredentialProvider("app", "secret")))
    assert provided.acl_whoami() == plain.acl_whoami()
    assert transport_of(provided) == "shm"
    with pytest.raises(redis.AuthenticationError):
        redis_py.Redis(unix_socket_path=srv.unix_socket, username="app",
                       password="wrong").ping()


def test_select_and_auth_in_flight_open_a_new_session(make_server) -> None:
    srv = make_server("redis", "main-thread")
    redis.Redis(unix_socket_path=srv.unix_socket).acl_setuser(
        "other", enabled=True, passwords=["+pw"], keys=["o:*"], commands=["+@all"])
    shm = redis_py.Redis(unix_socket_path=srv.unix_socket, single_connection_client=True)
    shm.execute_command("SELECT", 4)
    shm.set("k", "db4")
    assert shm.connection.transport == "shm"
    assert redis.Redis(unix_socket_path=srv.unix_socket, db=4).get("k") == b"db4"
    shm.execute_command("AUTH", "other", "pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        shm.set("k", "denied")  # the new session runs as the new user
    shm.set("o:k", "ok")
    assert shm.connection.transport == "shm"
    shm.close()


def test_a_timeout_is_redis_pys_timeout(make_server) -> None:
    srv = make_server("redis", "main-thread")
    admin = redis.Redis(unix_socket_path=srv.unix_socket)
    outcomes = []
    for cls in (redis.Redis, redis_py.Redis):
        client = cls(unix_socket_path=srv.unix_socket, socket_timeout=0.2,
                     retry=Retry(NoBackoff(), 0))
        client.ping()
        admin.client_pause(5000)  # the SET waits on the paused socket
        try:
            outcomes.append(outcome(lambda c=client: c.set("k", "v")))
        finally:
            admin.client_unpause()
        assert client.set("k", "v")
    assert outcomes[0][0] is redis.TimeoutError and outcomes[1] == outcomes[0]
    assert transport_of(redis_py.Redis(unix_socket_path=srv.unix_socket)) == "shm"


def test_connections_past_max_sessions_use_their_sockets_and_count_no_error(
        make_server, caplog: pytest.LogCaptureFixture) -> None:
    """The server counts the errors redis-py's own two connections would
    (CLIENT SETINFO on a server without it), none more."""
    srv = make_server("redis", "main-thread", config={"shm.max-sessions": "1"})
    errors = []
    with caplog.at_level(logging.INFO, logger="shmcli.redis_py"):
        for cls in (redis.Redis, redis_py.Redis):
            pool = cls(unix_socket_path=srv.unix_socket).connection_pool
            with srv.admin() as admin:
                admin.execute("CONFIG", "RESETSTAT")
            first, second = connection_from(pool), connection_from(pool)
            try:
                for connection in (first, second):
                    connection.send_command("SET", "k", "v")
                    assert connection.read_response() == b"OK"
                errors.append(srv.info("errorstats"))
                transports = [getattr(c, "transport", "socket") for c in (first, second)]
            finally:
                pool.release(first)
                pool.release(second)
                pool.disconnect()
    assert transports == ["shm", "socket"]
    assert errors[1] == errors[0]
    assert shm_info(srv)["shm_handshakes_refused"] == 1
    assert "shm.max-sessions are all in use" in caplog.text


@pytest.mark.parametrize("mode", ["main-thread", "fast-path"])
def test_a_reply_the_session_owes_times_out_as_redis_pys(make_server, mode: str) -> None:
    """A GET through shared memory to a server that stopped (SIGSTOP): redis-py's
    own TimeoutError, message included; once it runs again, the client
    carries on, with a new session."""
    srv = make_server("redis", mode)
    outcomes = []
    for cls in (redis.Redis, redis_py.Redis):
        client = cls(unix_socket_path=srv.unix_socket, socket_timeout=0.2,
                     retry=Retry(NoBackoff(), 0))
        client.set("k", "v")
        srv.freeze()
        try:
            outcomes.append(outcome(lambda c=client: c.get("k")))
        finally:
            srv.thaw()
        assert client.get("k") == b"v"
        assert transport_of(client) == ("shm" if cls is redis_py.Redis else "socket")
        client.close()
    assert outcomes[0][0] is redis.TimeoutError and outcomes[1] == outcomes[0]


class Interrupted(BaseException):
    """What the test's signal handler raises, as Ctrl-C raises KeyboardInterrupt."""


def test_an_interrupted_wait_for_a_reply_leaves_the_connection_closed(make_server) -> None:
    """An exception raised while a reply through shared memory is awaited
    (a signal handler's, Ctrl-C's) disconnects, as redis-py's own read does:
    the next command gets its own reply at once, never the lost one's."""
    srv = make_server("redis", "main-thread")
    client = redis_py.Redis(unix_socket_path=srv.unix_socket, socket_timeout=2,
                            retry=Retry(NoBackoff(), 0), single_connection_client=True)
    client.mset({"k": "v", "other": "o"})
    assert client.connection.transport == "shm"

    def interrupt(*_) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    srv.freeze()  # the GET waits for its reply
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
    threading.Timer(0.4, srv.thaw).start()
    try:
        with pytest.raises(Interrupted):  # raised once the wait returns with the reply
            client.get("k")
    finally:
        srv.thaw()
        signal.signal(signal.SIGUSR1, previous)
    started = time.monotonic()
    assert client.get("other") == b"o"
    assert client.config_get("maxmemory-policy")  # over the socket: nothing owed there either
    assert time.monotonic() - started < 1.5  # not the socket_timeout of a wait for nothing


def test_without_the_module_the_socket_is_used_with_one_log_line(
        make_server, caplog: pytest.LogCaptureFixture) -> None:
    srv = make_server("redis", "main-thread", load_module=False)
    caplog.set_level(logging.INFO, logger="shmcli.redis_py")
    admin = redis.Redis(unix_socket_path=srv.unix_socket)
    errors = []
    for cls in (redis.Redis, redis_py.Redis):  # redis-py's own handshake may count some
        before = admin.info("stats")["total_error_replies"]
        for _ in range(3):
            client = cls(unix_socket_path=srv.unix_socket)
            assert client.set("k", "v") and client.get("k") == b"v"
            client.close()
        errors.append(admin.info("stats")["total_error_replies"] - before)
    assert errors[1] == errors[0]
    assert transport_of(redis_py.Redis(unix_socket_path=srv.unix_socket)) == "socket"
    assert [r.getMessage() for r in caplog.records].count(
        f"{srv.unix_socket} has no shm module: redis-py uses its socket") == 1


def test_a_dead_server_raises_and_a_restarted_one_gets_a_new_session(make_server) -> None:
    srv = make_server("redis", "main-thread")
    shm = redis_py.Redis(unix_socket_path=srv.unix_socket,
                         retry=Retry(NoBackoff(), 2), retry_on_error=[redis.ConnectionError])
    assert shm.set("k", "v")
    srv.stop()
    with pytest.raises(redis.ConnectionError):
        shm.get("k")
    srv.start()
    assert shm.get("k") is None  # no persistence: the data is gone, the client is not
    assert transport_of(shm) == "shm"
    assert shm_info(srv)["shm_sessions_opened"] >= 1


def test_threads_sharing_a_client_each_get_their_own_replies(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    failures: list[str] = []
    deadline = time.monotonic() + 1.5

    def work(n: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            key, value = f"t{n}", f"{n}:{i}"
            with shm.pipeline(transaction=False) as pipe:
                replies = pipe.set(key, value).get(key).execute()
            if replies != [True, value.encode()] or shm.get(key) != value.encode():
                failures.append(f"thread {n}: {replies}")
            i += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert transport_of(shm) == "shm"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_session(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    shm.set("k", "parent")
    opened = shm_info(server)["shm_sessions_opened"]
    # the child: redis-py's pool sees the new pid and connects anew
    assert in_forked_child(lambda: f"{shm.get('k')!r} {transport_of(shm)}") == "b'parent' shm"
    assert shm_info(server)["shm_sessions_opened"] == opened + 1
    assert shm.set("k", "still the parent's") and shm.get("k") == b"still the parent's"


def test_from_url_takes_shm_schemes(server: Server) -> None:
    for url in (f"unix+shm://{server.unix_socket}", f"unix://{server.unix_socket}?db=2",
                f"redis+shm://127.0.0.1:{server.port}/1"):
        client = redis_py.from_url(url)
        assert client.set("k", url) and client.get("k") == url.encode()
        assert transport_of(client) == "shm"
        client.close()
    pool = redis.ConnectionPool(connection_class=redis_py.ShmUnixConnection,
                                path=server.unix_socket)
    client = redis.Redis(connection_pool=pool)
    assert client.ping() and transport_of(client) == "shm"


def test_a_killed_connection_is_redis_pys_connection_error(server: Server) -> None:
    admin = redis.Redis(unix_socket_path=server.unix_socket)
    outcomes = []
    for cls in (redis.Redis, redis_py.Redis):
        client = cls(unix_socket_path=server.unix_socket, retry=Retry(NoBackoff(), 0),
                     single_connection_client=True)
        client.set("k", "v")
        admin.client_kill_filter(_id=client.client_id())  # the session ends with its client
        outcomes.append(outcome(lambda c=client: c.get("k"))[0])
        assert client.get("k") == b"v"  # redis-py connects again: a new session
        if cls is redis_py.Redis:
            assert client.connection.transport == "shm"
        client.close()
    assert outcomes == [redis.ConnectionError, redis.ConnectionError]


@pytest.mark.parametrize("left", ["a socket reply", "a session reply", "a killed client",
                                  "a restarted server"])
def test_the_pool_never_hands_out_a_connection_with_something_to_read(
        make_server, left: str) -> None:
    """The pool asks can_read() before each command; ShmConnection answers
    the usual "nothing" itself.  A connection left with a reply unread, or
    closed by the server, is connected again without an error, as redis-py's
    own is (no retries: the pool's check alone must see it)."""
    srv = make_server("redis", "main-thread")
    admin = redis.Redis(unix_socket_path=srv.unix_socket)
    results = []
    for cls in (redis.Redis, redis_py.Redis):
        client = cls(unix_socket_path=srv.unix_socket, retry=Retry(NoBackoff(), 0))
        client.mset({"k": "v", "stale": "stale"})
        pool = client.connection_pool
        connection = connection_from(pool)
        if left == "a socket reply":
            connection.send_packed_command([b"*1\r\n$4\r\nPING\r\n"])  # by hand: the socket
            assert connection.can_read(timeout=5)
        elif left == "a session reply":
            connection.send_command("GET", "stale")  # whose reply must never be GET k's
            assert connection.can_read(timeout=5)
        elif left == "a killed client":
            admin.client_kill_filter(_id=admin.client_list()[-1]["id"])
        else:
            srv.stop()
            srv.start()
            client.set("k", "v")  # on a connection of its own: the pool has only the one
        pool.release(connection)
        results.append((outcome(lambda c=client: c.get("k")), transport_of(client)))
        client.close()
    assert results == [(b"v", "socket"), (b"v", "shm")]


def test_a_connection_busy_over_shared_memory_outlives_the_servers_timeout(make_server) -> None:
    srv = make_server("redis", "main-thread", config={"timeout": "1"})
    shm = redis_py.Redis(unix_socket_path=srv.unix_socket, single_connection_client=True,
                         retry=Retry(NoBackoff(), 0))
    first = shm.client_id()
    deadline = time.monotonic() + 2.5  # the server's timeout would close an idle socket twice
    while time.monotonic() < deadline:
        assert shm.incr("n") > 0
        time.sleep(0.01)
    assert shm.client_id() == first and shm.connection.transport == "shm"
    time.sleep(2.5)  # really idle now: the server closes it, as it would the socket
    with pytest.raises(redis.ConnectionError):
        shm.get("n")
    shm.close()


def test_the_command_after_asking_uses_the_socket(server: Server) -> None:
    shm = redis_py.Redis(unix_socket_path=server.unix_socket, single_connection_client=True)
    plain = redis.Redis(unix_socket_path=server.unix_socket)
    assert outcome(lambda: shm.execute_command("ASKING")) == \
        outcome(lambda: plain.execute_command("ASKING"))  # no cluster here: an error either way
    before = shm_commands(server)
    shm.get("k")  # ASKING's flag would be the socket's client's: so is this command
    assert shm_commands(server) == before
    shm.get("k")
    assert shm_commands(server) == before + 1
    shm.close()


def test_a_pipeline_of_big_replies_matches(server: Server) -> None:
    """Replies are fetched a MiB at a time: five 400 kB values span three fetches."""
    shm = redis_py.Redis(unix_socket_path=server.unix_socket)
    plain = redis.Redis(unix_socket_path=server.unix_socket)
    values = [bytes([65 + i]) * 400_000 for i in range(5)]
    plain.mset({f"big{i}": value for i, value in enumerate(values)})
    replies = {}
    for name, client in (("plain", plain), ("shm", shm)):
        with client.pipeline(transaction=False) as pipe:
            for i in range(5):
                pipe.get(f"big{i}").strlen(f"big{i}")
            replies[name] = pipe.execute()
    assert replies["shm"] == replies["plain"] == [x for v in values for x in (v, len(v))]
    assert transport_of(shm) == "shm"


def test_commands_packed_by_hand_go_over_the_socket(server: Server) -> None:
    for packed in ([b"PING\r\n"], [b"*1\r\n$4\r\nPING\r\n", b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"]):
        replies = {}
        for cls in (redis.UnixDomainSocketConnection, redis_py.ShmUnixConnection):
            connection = cls(path=server.unix_socket)
            connection.send_packed_command(packed)
            replies[cls] = [connection.read_response() for _ in packed]
            connection.disconnect()
        assert replies[redis_py.ShmUnixConnection] == replies[redis.UnixDomainSocketConnection]
