"""Every reply type, in every output mode, through the whole CLI.

test_output checks the formatter alone; this runs the real redis-cli and
shmcli end to end on the same server with the module loaded: the reply
corpus is fed as stdin lines (one process per tool and mode), in RESP2 and
RESP3, over shared memory and with --shm off.  DEBUG PROTOCOL is refused by
the module and so also exercises the socket fallback in the middle of a run.
"""

from __future__ import annotations

import pytest
from cli_diff import Case, differences
from reply_corpus import CORPUS, SEED
from servers import Server

MODE_FLAGS = {"tty": ["--no-raw"], "raw": [], "csv": ["--csv"], "json": ["--json"],
              "quoted-json": ["--quoted-json"], "faketty": []}


def quoted(arg: str | bytes) -> bytes:
    """One argument as a double-quoted stdin word (splitargs syntax)."""
    data = arg.encode() if isinstance(arg, str) else arg
    return b'"' + b"".join(b"\\x%02x" % b if b < 0x20 or b > 0x7E or b in b'"\\'
                           else bytes([b]) for b in data) + b'"'


LINES = b"".join(b" ".join(quoted(a) for a in argv) + b"\n" for _, argv in CORPUS)


@pytest.fixture(scope="module")
def corpus_server() -> Server:
    srv = Server("redis", config={"enable-debug-command": "yes"}).start()
    with srv.admin() as conn:
        conn.execute_many(SEED)
    yield srv
    srv.cleanup()


@pytest.mark.parametrize("shm", ["auto", "off"])
@pytest.mark.parametrize("protocol", ["-2", "-3"])
def test_every_reply_type_in_every_mode_matches_redis_cli(corpus_server: Server, shm: str,
                                                          protocol: str) -> None:
    cases = [Case([protocol, *flags], LINES, {"FAKETTY": "1"} if mode == "faketty" else {})
             for mode, flags in MODE_FLAGS.items()]
    differ = differences(cases, target=["-s", corpus_server.unix_socket], shm=shm)
    assert not differ, "\n".join(differ)
