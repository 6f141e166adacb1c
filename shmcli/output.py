"""Render typed replies exactly as redis-cli 7.0.15 prints them.

``shmcli`` aims to be a drop-in replacement for ``redis-cli``, so scripts that
parse its output must see the same bytes.  :func:`format_reply` takes a typed
reply (:mod:`shmcli.resp`) and returns what redis-cli writes to stdout for the
reply of a one-shot command in one of its output modes:

``"tty"``
    the "standard" human format (stdout is a terminal, or ``--no-raw``):
    ``(integer) 1``, ``(nil)``, quoted strings, ``1) ...`` numbered aggregates;
``"raw"``
    ``--raw`` (and the default when stdout is not a terminal);
``"csv"``, ``"json"``, ``"quoted-json"``
    ``--csv``, ``--json`` and ``--quoted-json``.

Quirks are reproduced on purpose: in raw mode an error is followed by a blank
line and a nil prints an empty line; JSON renders errors as ``error:"..."``
(not valid JSON) and passes non-ASCII bytes through unchanged;
``--quoted-json`` doubles every backslash of the C-style escape.

redis-cli 7.0.15 cannot print two RESP3 types at all (it exits with
``Unknown reply type: 13`` for big numbers and a protocol error for
attributes).  Here a :class:`~shmcli.resp.BigNumber` prints like a double
(``(big number) 1234`` in the TTY format, bare digits elsewhere) and an
:class:`~shmcli.resp.Attribute` is transparent: only the reply it annotates
is printed.  A RESP3 blob error prints like a simple error, as later hiredis
versions do.

:func:`forces_raw` tells which commands redis-cli always prints raw (INFO,
CLIENT LIST...), whatever the mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from .resp import (
    Array,
    Attribute,
    BigNumber,
    Boolean,
    Bulk,
    Double,
    Error,
    Integer,
    Map,
    Nil,
    Push,
    Reply,
    Set,
    Status,
    Verbatim,
)

__all__ = ["MODES", "Mode", "forces_raw", "format_push", "format_reply", "repr_bytes"]

# typing.TYPE_CHECKING without importing typing (start-up time, see resp.py);
# Mode is made on first use at run time (__getattr__ below).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Literal, TypeAlias

    Mode: TypeAlias = Literal["tty", "raw", "csv", "json", "quoted-json"]


def __getattr__(name: str) -> object:
    """Mode at run time, for callers that use it."""
    if name == "Mode":
        from typing import Literal
        return Literal["tty", "raw", "csv", "json", "quoted-json"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MODES: Final[tuple[str, ...]] = ("tty", "raw", "csv", "json", "quoted-json")

_Aggregate: TypeAlias = Array | Set | Push | Map


def format_reply(reply: Reply, mode: str, *, delimiter: bytes = b"\n",
                 reply_delimiter: bytes = b"\n") -> bytes:
    """The bytes redis-cli prints for ``reply`` in output ``mode``.

    ``delimiter`` and ``reply_delimiter`` are redis-cli's ``-d`` (between
    aggregate items) and ``-D`` (after the whole reply); both only matter in
    raw mode.
    """
    if mode == "tty":
        return _tty(reply, b"")
    if mode == "raw":
        return _raw(reply, delimiter) + reply_delimiter
    if mode == "csv":
        return _csv(reply) + b"\n"
    if mode in ("json", "quoted-json"):
        return _json(reply, mode == "quoted-json") + b"\n"
    raise ValueError(f"unknown output mode {mode!r} (expected one of {', '.join(MODES)})")


def format_push(push: Reply, mode: str, *, delimiter: bytes = b"\n",
                reply_delimiter: bytes = b"\n") -> bytes:
    """A RESP3 push shown by --show-pushes: as a reply, except that the
    human format prints a key invalidation as ``-> invalidate: 'k1', 'k2'``."""
    if mode == "tty" and isinstance(push, Push) and len(push.items) == 2:
        kind, keys = push.items
        if isinstance(kind, Bulk) and kind.data.startswith(b"invalidate") \
                and isinstance(keys, Array):
            # %s in C: each key up to its first NUL byte
            names = [b"'" + key.data.split(b"\0", 1)[0] + b"'"
                     for key in keys.items if isinstance(key, Bulk)]
            return b"-> invalidate: " + b", ".join(names) + b"\n"
    return format_reply(push, mode, delimiter=delimiter, reply_delimiter=reply_delimiter)


# Commands whose reply redis-cli prints raw (without the -D delimiter) in
# every output mode: (name, subcommand or None, required argc or None).
_RAW_COMMANDS: Final = (
    (b"info", None, None), (b"lolwut", None, None),
    (b"debug", b"htstats", None), (b"debug", b"htstats-key", None),
    (b"debug", b"client-eviction", None),
    (b"memory", b"malloc-stats", None), (b"memory", b"doctor", None),
    (b"cluster", b"nodes", 2), (b"cluster", b"info", 2),
    (b"client", b"list", None), (b"client", b"info", None),
    (b"latency", b"graph", 3), (b"latency", b"doctor", 2),
    (b"proxy", b"info", None),
)


def forces_raw(argv: Sequence[bytes | str]) -> bool:
    """True when redis-cli prints this command's reply raw whatever the mode.

    Such a reply should be printed as ``format_reply(r, "raw",
    reply_delimiter=b"")``.
    """
    args = [a.encode() if isinstance(a, str) else bytes(a) for a in argv]
    if not args:
        return False
    name = args[0].lower()
    sub = args[1].lower() if len(args) > 1 else None
    for cmd, subcmd, argc in _RAW_COMMANDS:
        if name == cmd and (subcmd is None or sub == subcmd) \
                and (argc is None or len(args) == argc):
            return True
    return False


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

_REPR_ESCAPES: Final = {
    ord("\\"): b"\\\\", ord('"'): b'\\"', ord("\n"): b"\\n", ord("\r"): b"\\r",
    ord("\t"): b"\\t", ord("\a"): b"\\a", ord("\b"): b"\\b",
}
# sdscatrepr() with isprint() in the C locale: 0x20..0x7e are printable.
_REPR_TABLE: Final = [
    _REPR_ESCAPES.get(b, bytes([b]) if 0x20 <= b <= 0x7E else b"\\x%02x" % b)
    for b in range(256)
]
_JSON_ESCAPES: Final = {
    ord("\\"): b"\\\\", ord('"'): b'\\"', ord("\n"): b"\\n", ord("\f"): b"\\f",
    ord("\r"): b"\\r", ord("\t"): b"\\t", ord("\b"): b"\\b",
}
# escapeJsonString(): other control bytes as \u00XX, everything else as is.
_JSON_TABLE: Final = [
    _JSON_ESCAPES.get(b, b"\\u%04x" % b if b <= 0x1F else bytes([b])) for b in range(256)
]


def repr_bytes(data: bytes) -> bytes:
    """redis' ``sdscatrepr``: a double-quoted, C-escaped copy of ``data``."""
    return b'"' + b"".join([_REPR_TABLE[b] for b in data]) + b'"'


def _json_string(data: bytes, quoted: bool) -> bytes:
    if quoted:
        return repr_bytes(data).replace(b"\\", b"\\\\")
    return b'"' + b"".join([_JSON_TABLE[b] for b in data]) + b'"'


def _c_string(data: bytes) -> bytes:
    """What C string functions see of ``data``: everything before a NUL."""
    return data.split(b"\0", 1)[0]


def _unwrap(reply: Reply) -> Reply:
    while isinstance(reply, Attribute):
        reply = reply.value
    return reply


def _elements(reply: _Aggregate) -> tuple[Reply, ...]:
    """The items of an aggregate; a map's keys and values interleaved."""
    if isinstance(reply, Map):
        return tuple(x for pair in reply.pairs for x in pair)
    return reply.items


def _unknown(reply: Reply) -> TypeError:
    return TypeError(f"cannot format {type(reply).__name__}")


# --------------------------------------------------------------------------
# Formatters (they mirror redis-cli's cliFormatReply* functions)
# --------------------------------------------------------------------------

_EMPTY: Final = {Array: b"(empty array)\n", Map: b"(empty hash)\n",
                 Set: b"(empty set)\n", Push: b"(empty push)\n"}
_NUMSEP: Final = {Array: b")", Push: b")", Set: b"~", Map: b"#"}


def _is_multiline_tty(reply: Reply) -> bool:
    reply = _unwrap(reply)
    if isinstance(reply, Array | Set | Push):
        return len(reply.items) > 1 or (len(reply.items) == 1
                                        and _is_multiline_tty(reply.items[0]))
    if isinstance(reply, Map):
        return len(reply.pairs) > 1 or (len(reply.pairs) == 1
                                        and _is_multiline_tty(reply.pairs[0][1]))
    return False


def _tty(reply: Reply, prefix: bytes) -> bytes:
    reply = _unwrap(reply)
    match reply:
        case Error(text):
            return b"(error) " + _c_string(text) + b"\n"
        case Status(text):
            return _c_string(text) + b"\n"
        case Integer(value):
            return b"(integer) %d\n" % value
        case Double(text):
            return b"(double) " + text + b"\n"
        case BigNumber(text):
            return b"(big number) " + text + b"\n"
        case Bulk(data):
            return repr_bytes(data) + b"\n"
        case Verbatim(_, data):
            return data + b"\n"
        case Nil():
            return b"(nil)\n"
        case Boolean(value):
            return b"(true)\n" if value else b"(false)\n"
        case Array() | Set() | Push() | Map():
            return _tty_aggregate(reply, prefix)
    raise _unknown(reply)


def _tty_aggregate(reply: _Aggregate, prefix: bytes) -> bytes:
    count = len(reply.pairs) if isinstance(reply, Map) else len(reply.items)
    if count == 0:
        return _EMPTY[type(reply)]
    idxlen = len(str(count))
    child_prefix = prefix + b" " * (idxlen + 2)
    sep = _NUMSEP[type(reply)]
    out: list[bytes] = []
    pairs: Sequence[tuple[Reply, Reply | None]] = (
        reply.pairs if isinstance(reply, Map) else [(item, None) for item in reply.items])
    for index, (item, value) in enumerate(pairs):
        # The first item shares its line with the parent's index.
        out.append((prefix if index else b"") + b"%*d" % (idxlen, index + 1) + sep + b" ")
        text = _tty(item, child_prefix)
        if value is not None:  # a map pair
            out.append(text[:-1] + b" => ")
            if _is_multiline_tty(value):
                out.append(b"\n" + child_prefix)
            out.append(_tty(value, child_prefix))
        else:
            out.append(text)
    return b"".join(out)


def _raw(reply: Reply, delimiter: bytes) -> bytes:
    reply = _unwrap(reply)
    match reply:
        case Nil():
            return b""
        case Error(text):
            return text + b"\n"
        case Status(text) | Bulk(text) | Verbatim(_, text):
            return text
        case Boolean(value):
            return b"(true)" if value else b"(false)"
        case Integer(value):
            return b"%d" % value
        case Double(text) | BigNumber(text):
            return text
        case Array(items) | Set(items) | Push(items):
            if all(type(item) is Bulk for item in items):  # a large LRANGE, KEYS...
                return delimiter.join([item.data for item in items])  # type: ignore[attr-defined]
            return delimiter.join([_raw(item, delimiter) for item in items])
        case Map(pairs):
            return delimiter.join([_raw(k, delimiter) + b" " + _raw(v, delimiter)
                                   for k, v in pairs])
    raise _unknown(reply)


def _csv(reply: Reply) -> bytes:
    reply = _unwrap(reply)
    match reply:
        case Error(text):
            return b"ERROR," + repr_bytes(_c_string(text))
        case Status(text) | Bulk(text) | Verbatim(_, text):
            return repr_bytes(text)
        case Integer(value):
            return b"%d" % value
        case Double(text) | BigNumber(text):
            return text
        case Nil():
            return b"NULL"
        case Boolean(value):
            return b"true" if value else b"false"
        case Array() | Set() | Push() | Map():
            return b",".join([_csv(item) for item in _elements(reply)])
    raise _unknown(reply)


def _json(reply: Reply, quoted: bool) -> bytes:
    reply = _unwrap(reply)
    match reply:
        case Error(text):
            return b"error:" + _json_string(_c_string(text), quoted)
        case Status(text) | Bulk(text) | Verbatim(_, text):
            return _json_string(text, quoted)
        case Integer(value):
            return b"%d" % value
        case Double(text) | BigNumber(text):
            return text
        case Nil():
            return b"null"
        case Boolean(value):
            return b"true" if value else b"false"
        case Array(items) | Set(items) | Push(items):
            return b"[" + b",".join([_json(item, quoted) for item in items]) + b"]"
        case Map(pairs):
            return b"{" + b",".join([_json_key(k, quoted) + b":" + _json(v, quoted)
                                     for k, v in pairs]) + b"}"
    raise _unknown(reply)


def _json_key(key: Reply, quoted: bool) -> bytes:
    """JSON object keys must be strings: other types are rendered, then
    wrapped in quotes unless the rendering already starts with one."""
    text = _json(key, quoted)
    if isinstance(_unwrap(key), Error | Status | Bulk | Verbatim) or text.startswith(b'"'):
        return text
    return b'"' + text + b'"'
