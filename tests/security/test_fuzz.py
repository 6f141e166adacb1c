"""Bounded randomized fuzz of the shared region and of requests (issue 9, DESIGN §5).

Two fuzzers, each against Redis and Valkey in both execution modes, on real
servers with the module (64 KiB rings, so records wrap and fragment often):

- region: a live session whose request ring this test writes by hand, as
  tests/test_hostile.py does: random bytes at the tail, impossible tails,
  record headers with odd lengths and types, padding in the right and wrong
  places, heads and flags the server must not trust, the header's fixed
  fields, a request rewritten right after it was published, mixed with valid
  and fragmented requests;
- request: well-framed records carrying random commands (real names,
  protected and connection-state ones included, random arities and
  arguments), mutated RESP, huge counts and lengths, truncated frames, random
  bytes, and requests cut into fragments at random places.

Nothing is compared with the socket.  What must hold, every time:

- after each step the session either answers (an ECHO with a fresh nonce
  comes back, after a RESUME if the module refused something) or is closed
  by the module (its session socket hangs up) within PROBE_TIMEOUT; a session
  that does neither fails the test;
- the server lives, and bystander sessions on other connections keep working
  over shared memory (checked every few steps and at the end);
- once everything is closed, the server holds no more descriptors than before.

Half the sessions run as the default user and half as `fuzz`, a user without
@admin/@dangerous and with keys limited to `fz:*` (the arity-before-ACL crash
of issue 9 needed key patterns).  Commands whose legitimate effect on a
socket would itself break the bystanders (CLIENT KILL/PAUSE) are sent only by
`fuzz`, whose ACL denies them; MIGRATE (network) and LCS/SRANDMEMBER-style
memory bombs are left out, since their cost is the server's, not the module's.

Time: SHMCLI_FUZZ_SECONDS (default 60) split evenly across the 8 cases.
Seed: SHMCLI_FUZZ_SEED (default random); printed, and named in every failure
with the last steps taken.  The same seed replays the same steps in order
(how many fit in the time depends on the machine).

    SHMCLI_FUZZ_SEED=1234 SHMCLI_FUZZ_SECONDS=120 .venv/bin/python -m pytest -q \\
        tests/security/test_fuzz.py
"""

from __future__ import annotations

import collections
import fcntl
import mmap
import os
import random
import re
import secrets
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from servers import EXEC_MODES, FLAVOURS, Server, settled_fd_count, shm_stat, wait_until

from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Integer, Status, encode_command

SECONDS = float(os.environ.get("SHMCLI_FUZZ_SECONDS", "60"))
SEED = int(os.environ.get("SHMCLI_FUZZ_SEED") or secrets.randbits(32))
CASES = [(kind, f, m) for kind in ("region", "request") for f in FLAVOURS for m in EXEC_MODES]
BUDGET = SECONDS / len(CASES)
PROBE_TIMEOUT = 10.0
BYSTANDER_EVERY = 20  # steps
RING = 65536
CONFIG = {"shm.ring-size": str(RING), "shm.input-limit": "32kb", "proto-max-bulk-len": "1mb"}

# native/channel/shm_layout.h, as offsets into the region
MAGIC, VERSION, HEADER_SIZE = 0x314D4853, 1, 4096
SERVER_CLOSED = 128
REQ_TAIL, REQ_PRODUCER_WAITING, REQ_PRODUCER_CPU = 256, 260, 264
REQ_HEAD, REQ_CONSUMER_WAITING, REQ_CONSUMER_CPU = 384, 388, 392
REP_TAIL, REP_PRODUCER_WAITING = 512, 516
REP_HEAD, REP_CONSUMER_WAITING, REP_CONSUMER_CPU = 640, 644, 648
REC_PADDING, REC_REQUEST, REC_REPLY, REC_RESUME, MORE = 1, 2, 3, 4, 0x80000000
F_ADD_SEALS, SEALS = 1033, 1 | 2 | 4  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW
REFUSED = b"-SHMFALLBACK"
U32 = 0xFFFFFFFF


def align8(n: int) -> int:
    return (n + 7) & ~7


class Closed(Exception):
    """The module closed the session."""


class RawSession:
    """A session built by hand, as any local process can; this test drives both rings."""

    def __init__(self, srv: Server, user: tuple[str, str] | None) -> None:
        kw: dict[str, object] = {"shm": "off", "timeout": 10.0}
        if user:
            kw.update(username=user[0], password=user[1])
        self.ctl = srv.connect(**kw)
        reply = self.ctl.execute("SHM.HANDSHAKE")
        assert isinstance(reply, Array), reply
        token, path, ring = reply.items[:3]
        assert isinstance(token, Bulk) and isinstance(path, Bulk) and isinstance(ring, Integer)
        assert ring.value == RING
        self.ring = RING
        self.max_fragment = RING // 4 - 8
        memfd = os.memfd_create("fuzz", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        self.bell = -1
        self.sock: socket.socket | None = None
        try:
            os.ftruncate(memfd, HEADER_SIZE + 2 * RING)
            os.pwrite(memfd, struct.pack("<IIII", MAGIC, VERSION, RING, HEADER_SIZE), 0)
            fcntl.fcntl(memfd, F_ADD_SEALS, SEALS)
            self.mm = mmap.mmap(memfd, HEADER_SIZE + 2 * RING)
            self.bell = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.sock.settimeout(10)
            self.sock.connect(path.data.decode())
            socket.send_fds(self.sock, [token.data], [memfd, self.bell])
            answer = self.sock.recv(256)
            assert answer == b"OK", answer
            self.sock.setblocking(False)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(memfd)
        self.tail = 0  # our request tail
        self.head = 0  # our reply head
        self.nonce = 0
        self.unsettled = False  # a corrupt tail the module may not have seen yet
        # We moved our own reply head: the module may write over replies we
        # have not read, so what we read is of our own making, not its.
        self.forged_head = False
        self.seen: collections.Counter[str] = collections.Counter()  # reply kinds

    # ---- raw access ----

    def get32(self, offset: int) -> int:
        return struct.unpack_from("<I", self.mm, offset)[0]

    def put32(self, offset: int, value: int) -> None:
        struct.pack_into("<I", self.mm, offset, value & U32)

    def req(self, position: int) -> int:
        return HEADER_SIZE + (position & (self.ring - 1))

    def rep(self, position: int) -> int:
        return HEADER_SIZE + self.ring + (position & (self.ring - 1))

    def publish(self, tail: int, corrupt: bool = False) -> None:
        """Store the request tail (the payload was written first) and ring the doorbell."""
        self.unsettled |= corrupt
        self.tail = tail & U32
        self.put32(REQ_TAIL, self.tail)
        os.eventfd_write(self.bell, 1)

    def closed(self) -> bool:
        assert self.sock is not None
        try:
            return self.sock.recv(16) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    # ---- a well-behaved client ----

    def put_record(self, kind: int, payload: bytes) -> None:
        """Write one record at our tail (a padding record first when it does not
        fit before the end), without publishing it."""
        need = 8 + align8(len(payload))
        pos = self.tail & (self.ring - 1)
        if pos + need > self.ring:
            struct.pack_into("<II", self.mm, self.req(self.tail), (self.ring - pos - 8) & U32,
                             REC_PADDING)
            self.tail = (self.tail + self.ring - pos) & U32
        at = self.req(self.tail)
        struct.pack_into("<II", self.mm, at, len(payload), kind)
        self.mm[at + 8:at + 8 + len(payload)] = payload
        self.tail = (self.tail + need) & U32

    def send(self, fragments: list[bytes]) -> None:
        """One request, in the given fragments (every one but the last has MORE)."""
        for i, fragment in enumerate(fragments):
            assert len(fragment) <= self.max_fragment
            last = i == len(fragments) - 1
            self.put_record(REC_REQUEST if last else REC_REQUEST | MORE, fragment)
            self.publish(self.tail)  # a fragment at a time: the ring stays within bounds

    def send_request(self, payload: bytes) -> None:
        step = self.max_fragment
        self.send([payload[i:i + step] for i in range(0, len(payload), step)] or [b""])

    def resume(self) -> None:
        self.put_record(REC_RESUME, b"")
        self.publish(self.tail)

    def take(self) -> tuple[int, bytes] | None:
        """The next record of the reply ring, checked, or None when there is none."""
        tail = self.get32(REP_TAIL)
        if tail == self.head:
            return None
        fill = (tail - self.head) & U32
        assert fill <= self.ring and fill % 8 == 0, f"server's reply tail {tail}, head {self.head}"
        length, kind = struct.unpack_from("<II", self.mm, self.rep(self.head))
        need = 8 + align8(length)
        assert need <= fill, f"reply record of {length} bytes over the published {fill}"
        payload = b""
        if kind == REC_PADDING:
            assert (self.head & (self.ring - 1)) + need == self.ring, "misplaced padding"
        else:
            assert kind & ~MORE == REC_REPLY, f"reply ring record type {kind:#x}"
            assert length <= self.max_fragment, f"reply fragment of {length} bytes"
            start = self.rep(self.head) + 8
            payload = bytes(self.mm[start:start + length])
        self.head = (self.head + need) & U32
        self.put32(REP_HEAD, self.head)
        if self.get32(REP_PRODUCER_WAITING):
            os.eventfd_write(self.bell, 1)
        return kind, payload

    def wait(self, spins: int, deadline: float) -> None:
        if self.closed():
            raise Closed
        if time.monotonic() > deadline:
            raise TimeoutError
        # Our real head, again: a fuzzed head must not leave the server waiting.
        self.put32(REP_HEAD, self.head)
        if self.get32(REP_PRODUCER_WAITING):
            os.eventfd_write(self.bell, 1)
        if spins > 200:
            time.sleep(0.0005)

    def recv(self, deadline: float) -> bytes:
        """One reply message; raises Closed when the module hangs up."""
        parts: list[bytes] = []
        spins = 0
        while True:
            record = self.take()
            if record is None:
                spins += 1
                self.wait(spins, deadline)
                continue
            kind, payload = record
            if kind == REC_PADDING:
                continue
            parts.append(payload)
            if not kind & MORE:
                reply = b"".join(parts)
                assert reply[:1] in b"+-:$*_,#!=(%~>|" and reply, f"not RESP: {reply[:80]!r}"
                return reply

    def taken(self) -> bool:
        """Whether the module took everything up to our tail.  It publishes its
        head when it consumes a record, so a padding record that ends what was
        published is skipped without the head moving past it."""
        head = self.get32(REQ_HEAD)
        if head == self.tail:
            return True
        to_end = self.ring - (head & (self.ring - 1))
        length, kind = struct.unpack_from("<II", self.mm, self.req(head))
        return ((self.tail - head) & U32) == to_end and kind == REC_PADDING \
            and length == to_end - 8

    def settle(self) -> None:
        """After a corrupt tail was published: wait until the module took all of
        it or hung up (raises Closed), reading any replies meanwhile.  Without
        this, the probe's own tail could hide the corrupt one from the module."""
        deadline = time.monotonic() + PROBE_TIMEOUT
        spins = 0
        while not self.taken():
            if self.take() is None:
                spins += 1
                try:
                    self.wait(spins, deadline)
                except TimeoutError:
                    raise AssertionError(
                        f"the module neither took the published requests nor closed the "
                        f"session in {PROBE_TIMEOUT:.0f} s (request tail {self.tail}, "
                        f"server head {self.get32(REQ_HEAD)})") from None

    def probe(self) -> str:
        """'answered' or 'closed': the session answers a fresh ECHO (resuming
        after any refusal) or the module hangs up, within PROBE_TIMEOUT."""
        try:
            if self.unsettled:
                self.unsettled = False
                self.settle()
            deadline = time.monotonic() + PROBE_TIMEOUT
            expected = self.echo()
            for _ in range(100):
                reply = self.recv(deadline)
                if reply == expected:
                    return "answered"
                self.seen[reply.split(b" ", 1)[0][:16].decode(errors="replace")
                          if reply[:1] == b"-" else reply[:1].decode()] += 1
                if reply.startswith(REFUSED):
                    self.resume()
                    expected = self.echo()
            raise AssertionError("a hundred replies and never the probe's")
        except Closed:
            return "closed"
        except AssertionError:
            if self.forged_head:  # garbage of our own making: give the session up
                return "abandoned"
            raise
        except TimeoutError:
            if self.forged_head:  # a stall of our own making, likewise
                return "abandoned"
            raise AssertionError(
                f"the session neither answered nor was closed in {PROBE_TIMEOUT:.0f} s "
                f"(request tail {self.tail}, server head {self.get32(REQ_HEAD)}, "
                f"reply tail {self.get32(REP_TAIL)}, our head {self.head})") from None

    def echo(self) -> bytes:
        self.nonce += 1
        word = f"probe-{self.nonce}-{secrets.token_hex(4)}".encode()
        self.send_request(encode_command("ECHO", word))
        return b"$%d\r\n%s\r\n" % (len(word), word)

    def close(self) -> None:
        if getattr(self, "mm", None) is not None:
            self.mm.close()
            self.mm = None  # type: ignore[assignment]
        if self.bell >= 0:
            os.close(self.bell)
            self.bell = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.ctl.close()


# ---- what to send ----

KEYS = ["fz:a", "fz:b", "fz:{t}1", "fz:{t}2", "fz:list", "fz:h", "fz:z", "fz:s", "fz:x",
        "k", "other", "", "*", "fz:*"]
WORDS = ["NX", "XX", "EX", "PX", "KEEPTTL", "GET", "WITHSCORES", "LIMIT", "COUNT", "MATCH",
         "TYPE", "BY", "STORE", "REV", "BYSCORE", "BYLEX", "AGGREGATE", "SUM", "WEIGHTS",
         "INCR", "OVERFLOW", "SAT", "u8", "i16", "#0", "+inf", "-inf", "(1", "[a", "-", "+",
         "0-0", "$", "ID", "GETNAME", "SETNAME", "LIST", "INFO", "LOAD", "SET", "RESETSTAT",
         "ON", "OFF", "USER", "default", "fuzz", "pw", "nopass", "AUTH", "3", "2", "LEFT",
         "RIGHT", "BEFORE", "MAXLEN", "~", "=", "NOSAVE", "ASYNC", "SYNC", "FREQ", "ENCODING",
         "/tmp/evil.so", "evil", "SEGFAULT", "SLEEP", "NO", "ONE", "RESET", "HELP", "DOCS"]
INTS = ["0", "1", "-1", "2", "3", "10", "100", "9223372036854775807", "-9223372036854775808",
        "18446744073709551616", "1e3", "nan", "inf", "-0", "007", " 1", "1.5", "4294967296"]

ORDINARY = """GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX APPEND STRLEN
GETRANGE SETRANGE INCR DECR INCRBY DECRBY INCRBYFLOAT DEL UNLINK EXISTS TYPE TTL PTTL EXPIRE
PEXPIRE EXPIREAT EXPIRETIME PERSIST RENAME RENAMENX COPY MOVE DUMP RESTORE TOUCH OBJECT SCAN
RANDOMKEY DBSIZE KEYS LPUSH RPUSH LPUSHX LPOP RPOP LRANGE LLEN LINDEX LSET LREM LTRIM LINSERT
LPOS LMOVE LMPOP RPOPLPUSH HSET HSETNX HGET HMGET HDEL HGETALL HINCRBY HINCRBYFLOAT HKEYS HVALS
HLEN HSCAN HSTRLEN HEXISTS SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SINTER SINTERCARD
SUNION SUNIONSTORE SDIFF SMOVE ZADD ZRANGE ZRANGESTORE ZRANGEBYSCORE ZSCORE ZMSCORE ZREM ZINCRBY
ZCARD ZCOUNT ZLEXCOUNT ZUNIONSTORE ZINTERSTORE ZINTER ZUNION ZDIFF ZPOPMIN ZPOPMAX ZMPOP ZRANK
XADD XRANGE XREVRANGE XLEN XDEL XTRIM XINFO XGROUP XACK XCLAIM XAUTOCLAIM XPENDING SETBIT GETBIT
BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO PFADD PFCOUNT PFMERGE GEOADD GEODIST GEOPOS GEOSEARCH
GEOSEARCHSTORE GEORADIUS PING ECHO TIME LASTSAVE INFO COMMAND MEMORY LATENCY SLOWLOG PUBLISH
PUBSUB SORT SORT_RO""".split()
STATE = "SELECT AUTH HELLO RESET QUIT READONLY READWRITE ASKING".split()
CLIENT_SUBCOMMANDS = ["ID", "GETNAME", "SETNAME", "INFO", "LIST", "TRACKING", "CACHING",
                      "NO-EVICT", "NO-TOUCH", "GETREDIR", "UNBLOCK", "TRACKINGINFO", "UNPAUSE"]
PROTECTED = """DEBUG MODULE CONFIG SHUTDOWN MONITOR SUBSCRIBE PSUBSCRIBE SSUBSCRIBE UNSUBSCRIBE
PUNSUBSCRIBE MULTI EXEC DISCARD WATCH UNWATCH BLPOP BRPOP BLMOVE BZPOPMIN BLMPOP XREAD XREADGROUP
WAIT WAITAOF FAILOVER SYNC PSYNC REPLCONF REPLICAOF SLAVEOF ACL EVAL EVALSHA EVAL_RO FCALL
FUNCTION SCRIPT SAVE BGSAVE BGREWRITEAOF SWAPDB FLUSHALL FLUSHDB CLUSTER SHM.HANDSHAKE
RESTORE-ASKING PFDEBUG LOLWUT""".split()
# only for `fuzz`, whose ACL denies them: on a socket they would end the bystanders
ACL_DENIED_ONLY = [["CLIENT", "KILL"], ["CLIENT", "PAUSE"], ["CLIENT", "NO-EVICT"]]
SUBCOMMANDS = {"CONFIG": ["SET", "GET", "RESETSTAT", "REWRITE"],
               "DEBUG": ["SLEEP", "SEGFAULT", "OBJECT", "RELOAD", "SET-ACTIVE-EXPIRE"],
               "MODULE": ["LOAD", "LIST", "UNLOAD"], "ACL": ["SETUSER", "WHOAMI", "DELUSER"],
               "OBJECT": ["ENCODING", "FREQ", "HELP"], "MEMORY": ["USAGE", "STATS", "DOCTOR"],
               "XINFO": ["STREAM", "GROUPS"], "XGROUP": ["CREATE", "DESTROY"],
               "COMMAND": ["INFO", "COUNT", "GETKEYS", "DOCS"], "SCRIPT": ["LOAD", "FLUSH"],
               "FUNCTION": ["LOAD", "FLUSH", "LIST"], "LATENCY": ["LATEST", "RESET"],
               "SLOWLOG": ["GET", "RESET", "LEN"], "PUBSUB": ["CHANNELS", "NUMSUB"],
               "CLUSTER": ["INFO", "NODES"]}


def argument(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.35:
        return rng.choice(KEYS).encode()
    if r < 0.55:
        return rng.choice(WORDS).encode()
    if r < 0.8:
        if rng.random() < 0.4:
            return rng.choice(INTS).encode()
        return str(rng.randint(-3, 200)).encode()
    if r < 0.98:
        return rng.randbytes(rng.choice([0, 1, 5, 16, 64, 300]))
    return rng.randbytes(rng.choice([3000, 12000, 20000]))  # fragments, or over the input limit


def random_argv(rng: random.Random, restricted: bool) -> list[bytes]:
    r = rng.random()
    if r < 0.6:
        name = [rng.choice(ORDINARY)]
    elif r < 0.75:
        name = [rng.choice(STATE)] if rng.random() < 0.6 else ["CLIENT",
                                                               rng.choice(CLIENT_SUBCOMMANDS)]
    elif r < 0.97 or not restricted:
        name = [rng.choice(PROTECTED)]
    else:
        name = list(rng.choice(ACL_DENIED_ONLY))
    if len(name) == 1 and name[0] in SUBCOMMANDS and rng.random() < 0.8:
        name.append(rng.choice(SUBCOMMANDS[name[0]]))
    if rng.random() < 0.2:
        name[0] = rng.choice([name[0].lower(), name[0].title()])
    arity = rng.choice([0, 0, 1, 1, 2, 2, 3, 4, 6, 9])
    return [n.encode() for n in name] + [argument(rng) for _ in range(arity)]


HUGE_FRAMES = [b"*99999999999\r\n", b"*2147483648\r\n$3\r\nGET\r\n", b"*4294967297\r\n",
               b"*1\r\n$2147483647\r\nGET\r\n", b"*1\r\n$99999999999999999999\r\n",
               b"*1\r\n$1048577\r\n" + b"x" * 100,
               b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\nab",
               b"*-1\r\n", b"*0\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$0\r\n\r\n",
               b"*01\r\n$4\r\nPING\r\n",
               b"*+1\r\n$4\r\nPING\r\n", b"*1\r\n$+4\r\nPING\r\n", b"*1\r\n$4\r\nPING",
               b"*1\r\n$4\r\nPINGX\r\n", b"*1\r\n$4\r\nPING\r\nEXTRA", b"*1\n$4\nPING\n", b"\r\n",
               b"", b"PING\r\n", b"*1\r\n:4\r\n", b"*1\r\n*1\r\n$4\r\nPING\r\n",
               b"*2\r\n$4\r\nECHO\r\n$3\r\nab\x00\r\n", b"*65537\r\n" + b"$1\r\nx\r\n" * 3]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        at = rng.randint(0, len(b))
        if op == 0 and b:
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del b[at:at + rng.randint(1, 16)]
        elif op == 3:
            b[at:at] = b[at:at + rng.randint(1, 32)]
        elif op == 4:
            numbers = list(re.finditer(rb"\d+", bytes(b)))
            if numbers:
                m = rng.choice(numbers)
                n = int(m.group())
                b[m.start():m.end()] = rng.choice(
                    [b"0", b"-1", b"4294967296", b"99999999999999999999", b"01", b"+1", b"-0",
                     str(n + 1).encode(), str(max(0, n - 1)).encode(), b"2147483647"])
        elif op == 5:
            del b[at:]
        else:
            b += rng.randbytes(rng.randint(1, 16))
    return bytes(b)


def random_request(rng: random.Random, restricted: bool) -> tuple[str, bytes]:
    r = rng.random()
    if r < 0.55:
        argv = random_argv(rng, restricted)
        return f"argv {[a[:24] for a in argv]}", encode_command(*argv)
    if r < 0.8:
        argv = random_argv(rng, restricted)
        data = mutate(rng, encode_command(*argv))
        return f"mutated {data[:80]!r}", data
    if r < 0.92:
        data = rng.choice(HUGE_FRAMES)
        return f"frame {data[:60]!r}", data
    data = rng.randbytes(rng.randint(1, 400))
    return f"bytes {data[:40]!r}", data


def cut(rng: random.Random, payload: bytes, largest: int) -> list[bytes]:
    """The payload as fragments: at random places, and never over the largest record."""
    cuts = {0, len(payload)}
    cuts.update(range(largest, len(payload), largest))
    if len(payload) > 1 and rng.random() < 0.35:
        cuts.update(rng.sample(range(1, len(payload)), min(len(payload) - 1, rng.randint(1, 4))))
    points = sorted(cuts)
    return [payload[a:b] for a, b in zip(points, points[1:], strict=False)] or [b""]


# ---- region writes ----

def region_step(rng: random.Random, s: RawSession, restricted: bool) -> str:
    """One write the module must survive, or a valid request in between."""
    op = rng.randrange(14)
    tail = s.tail
    at = s.req(tail)
    room = s.ring - (tail & (s.ring - 1))  # bytes before the end of the ring
    if op == 0:
        n = rng.choice([8, 16, 64, 256, rng.randint(1, 300)])
        garbage = bytearray(rng.randbytes(min(n, room)))
        if len(garbage) >= 8 and rng.random() < 0.7:  # a type no record has, at times
            struct.pack_into("<I", garbage, 4, rng.choice([0, 5, 0x7FFF0000, MORE, U32]))
        s.mm[at:at + len(garbage)] = bytes(garbage)
        s.publish(tail + rng.choice([len(garbage), align8(len(garbage)), 8]), corrupt=True)
        return f"garbage {len(garbage)}"
    if op == 1:
        value = rng.choice([tail + s.ring + 8, tail - 8, tail - s.ring, tail + 4, tail + 1,
                            tail + 2 * s.ring, rng.randrange(1 << 32), s.get32(REQ_HEAD) - 8,
                            tail + s.ring, U32])
        s.publish(value, corrupt=True)
        return f"tail {tail} -> {value & U32}"
    if op == 2:
        length = rng.choice([0, 1, 7, 8, s.max_fragment, s.max_fragment + 1, s.ring // 4,
                             s.ring, 1 << 31, U32, rng.randrange(1 << 32), room - 8, room])
        kind = rng.choice([0, REC_PADDING, REC_REQUEST, REC_REPLY, REC_RESUME, 5,
                           REC_REQUEST | MORE, REC_PADDING | MORE, REC_RESUME | MORE,
                           rng.randrange(1 << 32)])
        body = encode_command("PING") if kind & ~MORE == REC_REQUEST and rng.random() < 0.5 \
            else b"\x00" + rng.randbytes(rng.randint(0, 64))  # never a RESP start
        body = body[:max(0, room - 8)]
        struct.pack_into("<II", s.mm, at, length & U32, kind)
        s.mm[at + 8:at + 8 + len(body)] = body
        s.publish(tail + rng.choice([8, 8 + align8(min(length, room)), 8 + len(body), 16, 12]),
                  corrupt=True)
        return f"record len {length & U32} type {kind:#x}"
    if op == 3:
        pad = rng.choice([room - 8, room - 8, room - 16, room, 0, 8])
        struct.pack_into("<II", s.mm, at, pad & U32, REC_PADDING)
        s.publish(tail + rng.choice([room, room, 8 + align8(max(pad, 0)), 8]), corrupt=True)
        return f"padding {pad} with {room} to the end"
    if op == 4:
        s.put32(REQ_HEAD, rng.choice([0, tail, tail + 8, tail - 8, rng.randrange(1 << 32)]))
        return "request head"
    if op == 5:
        s.put32(rng.choice([REQ_PRODUCER_WAITING, REQ_PRODUCER_CPU, REQ_CONSUMER_WAITING,
                            REQ_CONSUMER_CPU]), rng.choice([0, 1, U32, rng.randrange(1 << 32)]))
        return "request flags"
    if op == 6:
        head = s.head
        value = rng.choice([head - s.ring - 8, head - 8, head + 8, head + s.ring,
                            rng.randrange(1 << 32), head - s.ring])
        s.put32(REP_HEAD, value)
        s.forged_head = True
        return f"reply head {head} -> {value & U32}"
    if op == 7:
        s.put32(rng.choice([REP_CONSUMER_WAITING, REP_CONSUMER_CPU, REP_PRODUCER_WAITING]),
                rng.choice([0, 1, U32, rng.randrange(1 << 32)]))
        return "reply flags"
    if op == 8:
        s.put32(rng.choice([0, 4, 8, 12]), rng.randrange(1 << 32))
        return "header"
    if op == 9:  # rewritten right after it was published
        payload = encode_command("SET", "fz:a", rng.randbytes(rng.randint(1, 200)))
        start = s.req(s.tail if room >= 8 + align8(len(payload)) else 0) + 8
        s.send([payload])
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(payload))
            s.mm[start + i:start + i + 1] = rng.randbytes(1)
        return "request rewritten in flight"
    if op in (10, 11):
        what, payload = random_request(rng, restricted) if op == 10 else (
            "valid", encode_command(*random_argv(rng, restricted)))
        s.send(cut(rng, payload, s.max_fragment))
        return f"request {what}"
    # valid, wrapping: a request sized to end near the end of the ring
    size = max(1, min(s.max_fragment - 64, room - 40 + rng.randint(-16, 16)))
    s.send_request(encode_command("SET", "fz:x", b"w" * size))
    return f"wrapping request of {size} bytes"


def request_step(rng: random.Random, s: RawSession, restricted: bool) -> str:
    what, payload = random_request(rng, restricted)
    fragments = cut(rng, payload, s.max_fragment)
    s.send(fragments)
    return f"{what} in {len(fragments)} fragment(s)"


STEPS: dict[str, Callable[[random.Random, RawSession, bool], str]] = {
    "region": region_step, "request": request_step}


# ---- the run ----

def quiet_fd_count(srv: Server) -> int:
    wait_until(lambda: shm_stat(srv, "sessions") == 0
               and srv.info("clients")["connected_clients"] == "1", "other clients to leave")
    return settled_fd_count(srv)


def check_bystanders(srv: Server, bystanders: list[Connection], step: int) -> None:
    assert srv.alive(), f"the server died:\n{srv.log()[-4000:]}"
    for i, conn in enumerate(bystanders):
        value = f"{step}:{i}"
        assert conn.execute("SET", f"bystander:{i}", value) == Status(b"OK")
        assert conn.execute("GET", f"bystander:{i}") == Bulk(value.encode())
        assert conn.transport == "shm"


@pytest.fixture
def fuzz_server(make_server: Callable[..., Server], request: pytest.FixtureRequest
                ) -> Iterator[Server]:
    _, flavour, mode = request.param
    srv = make_server(flavour, mode, config=CONFIG)
    with srv.admin() as admin:
        assert admin.execute("ACL", "SETUSER", "fuzz", "reset", "on", ">pw", "~fz:*", "&*",
                             "+@all", "-@admin", "-@dangerous") == Status(b"OK")
    yield srv


@pytest.mark.timeout(BUDGET + 120)
@pytest.mark.parametrize("fuzz_server", CASES, ids=[f"{k}-{f}-{m}" for k, f, m in CASES],
                         indirect=True)
def test_fuzz(fuzz_server: Server, request: pytest.FixtureRequest) -> None:
    srv = fuzz_server
    kind = request.node.callspec.params["fuzz_server"][0]
    case = request.node.callspec.id
    rng = random.Random(f"{SEED}:{case}")
    print(f"fuzz {case}: SHMCLI_FUZZ_SEED={SEED}, {BUDGET:.1f} s")
    step_fn = STEPS[kind]
    recent: collections.deque[str] = collections.deque(maxlen=25)
    counts = collections.Counter[str]()
    replies = collections.Counter[str]()
    baseline = quiet_fd_count(srv)
    bystanders = [srv.connect(shm="require", timeout=10.0) for _ in range(2)]
    session: RawSession | None = None
    restricted = False
    step = 0
    try:
        end = time.monotonic() + BUDGET
        while time.monotonic() < end:
            step += 1
            if session is None:
                restricted = rng.random() < 0.5
                session = RawSession(srv, ("fuzz", "pw") if restricted else None)
                counts["sessions"] += 1
                recent.append(f"-- session as {'fuzz' if restricted else 'default'}")
            recent.append(f"{step}: {step_fn(rng, session, restricted)}")
            outcome = session.probe()
            counts[outcome] += 1
            if outcome != "answered":
                recent.append(f"{step}: {outcome}")
                replies.update(session.seen)
                session.close()
                session = None
            if step % BYSTANDER_EVERY == 0:
                check_bystanders(srv, bystanders, step)
        check_bystanders(srv, bystanders, step)
    except BaseException as exc:
        trail = "\n  ".join(recent)
        raise AssertionError(
            f"fuzz {case} failed at step {step} (SHMCLI_FUZZ_SEED={SEED}, "
            f"SHMCLI_FUZZ_SECONDS={SECONDS:g}): {exc!r}\nlast steps:\n  {trail}\n"
            f"server log:\n{srv.log()[-3000:]}") from exc
    finally:
        if session is not None:
            session.close()
        for conn in bystanders:
            conn.close()
    print(f"{step} steps, {dict(counts)}, replies {dict(replies.most_common(8))}")
    wait_until(lambda: quiet_fd_count(srv) <= baseline,
               f"the server's descriptors to return to {baseline}")
    assert srv.alive()
