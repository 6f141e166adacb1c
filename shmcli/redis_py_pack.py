"""Requests packed for the session exactly as redis-py would pack them, in
less time for the common arguments.

redis-py's packers (its hiredis one and its Python one, in every version
from 5, and redis.asyncio 5.0's Connection.pack_command) turn a command into
RESP the same way: a first argument of several words becomes several
arguments, str is encoded with the connection's encoding, int is written in
decimal, bytes go as they are.  Around that they spend about 2 µs of Python
per command (generators, isinstance chains, a list of chunks to join), a
sizeable share of a shared-memory GET.

quick_packer() gives a connection a packer that hands the arguments to
hiredis.pack_command in one call when every one is exactly str, int or bytes
(no subclass: an IntEnum's encoding is its repr; ints within 64 bits) and
the first is one word redis-py does not split; hiredis encodes str as UTF-8,
strictly, and int in decimal, which is what redis-py's do for a connection
whose encoding is UTF-8 and strict. Anything else (another encoding, a
float, a memoryview, an argument hiredis rejects, a packer that is not
redis-py's) goes to the connection's own packer, which keeps redis-py's
errors.
tests/test_redis_py_pack.py compares the two byte for byte.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable

from redis import connection as _redis_connection

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py without hiredis: its own packer does it all
    _hiredis_pack = None

# redis-py's packer classes (the names exist from 5.0 on).
_REDIS_PY_PACKERS = tuple(
    cls for cls in (getattr(_redis_connection, "HiredisRespSerializer", None),
                    getattr(_redis_connection, "PythonRespSerializer", None))
    if cls is not None)
# First arguments ("GET", b"SET"): whether redis-py packs them as they are
# (not "CLIENT ID", which it splits into two).
_AS_IS: dict[object, bool] = {}
_AS_IS_MAX = 4096   # first arguments remembered, each at most _WORD_MAX long
_WORD_MAX = 64
# Ints hiredis packs: within 64 bits (hiredis 3.5 crashes the process on one
# whose decimal form passes Python's digit limit, 10**4300, which redis-py's
# own packer refuses with ValueError).
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1

Packer = Callable[[tuple], bytes]


def quick_packer(connection) -> Packer:
    """A function packing a command's arguments into one request, as
    `connection`'s own packer would."""
    own = connection.pack_command

    def packed_by_redis_py(args: tuple) -> bytes:
        return b"".join(own(*args))

    if not _packs_like_hiredis(connection):
        return packed_by_redis_py

    def pack(args: tuple) -> bytes:
        try:
            as_is = _AS_IS[args[0]]
        except (KeyError, TypeError):
            as_is = _learn(args[0])
        if as_is:
            for arg in args:  # a loop: quicker than any set or all() for a few arguments
                kind = type(arg)
                if kind is not str and kind is not bytes and (
                        kind is not int or not _INT_MIN <= arg <= _INT_MAX):
                    break
            else:
                try:
                    return _hiredis_pack(args)
                except (TypeError, ValueError):  # redis-py's packer says what is wrong
                    pass
        return packed_by_redis_py(args)

    return pack


def _packs_like_hiredis(connection) -> bool:
    """Whether hiredis.pack_command gives `connection`'s packer's bytes for
    plain str, int and bytes arguments."""
    packer = getattr(connection, "_command_packer", None)
    if _hiredis_pack is None or (type(packer) not in _REDIS_PY_PACKERS
                                 and not _packs_in_python(connection)):
        return False
    encoder = connection.encoder
    try:
        utf8 = codecs.lookup(encoder.encoding).name == "utf-8"
    except LookupError:
        return False
    return utf8 and encoder.encoding_errors == "strict"


def _packs_in_python(connection) -> bool:
    """Whether `connection` is redis.asyncio's without a packer object (5.0
    has none there), whose own pack_command is redis-py's Python packer."""
    asyncio_connection = sys.modules.get("redis.asyncio.connection")
    return (asyncio_connection is not None
            and getattr(connection, "_command_packer", None) is None
            and type(connection).pack_command is asyncio_connection.AbstractConnection.pack_command)


def _learn(first: object) -> bool:
    """Whether redis-py packs `first` as it is: one word of str or bytes that
    its splitting leaves alone (no whitespace; "CLIENT ID" becomes two
    arguments).  Remembered, for up to _AS_IS_MAX first arguments."""
    if type(first) is str:
        try:
            as_is = first.encode().split() == [first.encode()]
        except UnicodeEncodeError:
            as_is = False
    elif type(first) is bytes:
        as_is = b" " not in first  # redis-py splits bytes only at a space
    else:
        return False
    if len(_AS_IS) < _AS_IS_MAX and len(first) <= _WORD_MAX:
        _AS_IS[first] = as_is
    return as_is
