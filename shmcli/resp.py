"""Type-preserving RESP2/RESP3 reply reader and command encoder.

shmcli must print replies exactly the way redis-cli does, and redis-cli's
output depends on details that hiredis-py's ``Reader`` throws away: a status
reply (``+OK``) and a bulk string (``$2 OK``) both come back as ``b"OK"``, a
RESP3 set becomes a list, a double loses its wire text (``,1.10`` becomes
``1.1``), verbatim strings lose their format, big numbers, attributes and push
messages become indistinguishable from ordinary values.  This module keeps all
of it: every reply is an immutable :class:`Reply` subclass that remembers its
wire type and exact content.

* :class:`Reader` is an incremental parser decoupled from I/O (feed bytes,
  pull complete replies), for stream transports.
* :func:`parse_one` parses exactly one complete reply held in one bytes
  object.  It is the hot path of the shared-memory transport, which delivers
  whole replies, and fast-paths tiny replies such as ``+PONG``.
* :func:`encode_command` encodes a command as a RESP multibulk.
* :func:`to_python` turns a typed reply into plain Python values.

Parsing is iterative, so arbitrarily deep nesting is safe; equality, hashing,
``repr`` and :func:`to_python` are iterative too.  RESP3 streamed strings and
aggregates (``$?``, ``*?`` ...) are not supported (Redis never sends them).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

# typing.TYPE_CHECKING without importing typing, which costs every shmcli
# start a few ms: the annotations here are strings (PEP 563), and the two
# Literal aliases are made on first use at run time (__getattr__ below).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "NOT_ENOUGH",
    "Array",
    "Attribute",
    "BigNumber",
    "BlobError",
    "Boolean",
    "Bulk",
    "BytesLike",
    "Double",
    "Error",
    "Integer",
    "Map",
    "Nil",
    "NilKind",
    "NotEnoughType",
    "ProtocolError",
    "Push",
    "Reader",
    "Reply",
    "Set",
    "Status",
    "Verbatim",
    "encode_command",
    "parse_one",
    "to_python",
]


class ProtocolError(ValueError):
    """Malformed RESP input (or, for :func:`parse_one`, incomplete/trailing)."""


_setattr = object.__setattr__
_new = object.__new__


BytesLike: TypeAlias = bytes | bytearray | memoryview


def _as_bytes(value: object, what: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _snippet(data: bytes | bytearray, limit: int = 40) -> str:
    if len(data) <= limit:
        return repr(bytes(data))
    return repr(bytes(data[:limit])) + "..."


def _strict_int(line: bytes, what: str) -> int:
    """Parse ``[+-]digits``; ``int()`` alone would also accept ``" 1"``/``1_0``."""
    if line.isdigit():
        return int(line)
    if line[:1] in (b"-", b"+") and line[1:].isdigit():
        return int(line)
    if line[:1] == b"?":
        raise ProtocolError(f"streamed RESP3 {what}s are not supported")
    raise ProtocolError(f"invalid {what} {_snippet(line)}")


# --------------------------------------------------------------------------
# Reply types
# --------------------------------------------------------------------------


class Reply:
    """Base class of all typed replies.

    Replies are immutable.  Two replies are equal when they have the same type
    and equal content, so ``Status(b"OK") != Bulk(b"OK")`` and an
    :class:`Array` never equals a :class:`Set` with the same items.  Replies
    never compare equal to plain Python values.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def _key(self) -> tuple[Any, ...]:
        """Constructor arguments (also the content compared by leaves)."""
        raise NotImplementedError

    def _children(self) -> tuple[Reply, ...] | None:
        """Nested replies in wire order, or None for a leaf."""
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._key())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _deep_equal(self, other)

    def __hash__(self) -> int:
        kids = self._children()
        if kids is None:
            return hash((type(self), self._key()))
        # Shallow on purpose (bounded work, no recursion): nested aggregates
        # contribute only their type and size.  Still consistent with __eq__.
        return hash((type(self), len(kids), tuple(map(_shallow_hash, kids))))

    def __repr__(self) -> str:
        text: str = _fold(self, _leaf_repr, _node_repr)
        return text


def _shallow_hash(reply: Reply) -> int:
    kids = reply._children()
    if kids is None:
        return hash(reply)
    return hash((type(reply), len(kids)))


class Status(Reply):
    """Simple string (``+``), e.g. ``+OK``."""

    __slots__ = ("text",)
    __match_args__ = ("text",)
    text: bytes

    def __init__(self, text: BytesLike) -> None:
        _setattr(self, "text", _as_bytes(text, "Status.text"))

    def _key(self) -> tuple[bytes]:
        return (self.text,)


class Error(Reply):
    """Simple error (``-``) holding the full line, e.g. ``b"ERR unknown ..."``."""

    __slots__ = ("text",)
    __match_args__ = ("text",)
    text: bytes

    def __init__(self, text: BytesLike) -> None:
        _setattr(self, "text", _as_bytes(text, f"{type(self).__name__}.text"))

    def _key(self) -> tuple[bytes]:
        return (self.text,)

    @property
    def code(self) -> str:
        """The error code: the first word of the line, e.g. ``"WRONGPASS"``."""
        return self.text.split(b" ", 1)[0].decode("utf-8", "replace")

    @property
    def message(self) -> str:
        """The whole line decoded (code included), as redis-cli shows it."""
        return self.text.decode("utf-8", "replace")

    def __str__(self) -> str:
        return self.message


class BlobError(Error):
    """RESP3 blob error (``!``); an :class:`Error` that may contain CRLF.

    It is a distinct type: ``BlobError(b"x") != Error(b"x")``.
    """

    __slots__ = ()


class Integer(Reply):
    """Integer (``:``)."""

    __slots__ = ("value",)
    __match_args__ = ("value",)
    value: int

    def __init__(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"Integer.value must be int, not {type(value).__name__}")
        _setattr(self, "value", int(value))

    def _key(self) -> tuple[int]:
        return (self.value,)


class Bulk(Reply):
    """Bulk string (``$``); binary safe."""

    __slots__ = ("data",)
    __match_args__ = ("data",)
    data: bytes

    def __init__(self, data: BytesLike) -> None:
        _setattr(self, "data", _as_bytes(data, "Bulk.data"))

    def _key(self) -> tuple[bytes]:
        return (self.data,)


if TYPE_CHECKING:
    NilKind: TypeAlias = Literal["bulk", "array", "null"]
_NIL_KINDS: Final = ("bulk", "array", "null")


class Nil(Reply):
    """A null reply, remembering how it was sent.

    ``Nil("bulk")`` is RESP2 ``$-1``, ``Nil("array")`` is RESP2 ``*-1`` and
    ``Nil("null")`` is RESP3 ``_``.  There is one instance per kind, so
    identity comparison works too.  Nil replies are falsy.
    """

    __slots__ = ("kind",)
    __match_args__ = ("kind",)
    kind: NilKind
    _instances: dict[str, Nil] = {}  # noqa: RUF012  (class-level cache)

    def __new__(cls, kind: NilKind) -> Nil:
        try:
            return cls._instances[kind]
        except (KeyError, TypeError):
            pass
        if kind not in _NIL_KINDS:
            raise ValueError(f"Nil kind must be one of {_NIL_KINDS}, not {kind!r}")
        self = _new(cls)
        _setattr(self, "kind", kind)
        cls._instances[kind] = self
        return self

    def _key(self) -> tuple[str]:
        return (self.kind,)

    def __bool__(self) -> bool:
        return False


class Double(Reply):
    """RESP3 double (``,``), kept as its wire text; compared by that text.

    ``Double(b"1.10") != Double(b"1.1")`` and ``Double(b"nan")`` equals
    itself.  :attr:`value` converts it (``inf``, ``-inf`` and ``nan`` work).
    """

    __slots__ = ("text",)
    __match_args__ = ("text",)
    text: bytes

    def __init__(self, text: BytesLike) -> None:
        raw = _as_bytes(text, "Double.text")
        try:
            float(raw)
        except ValueError:
            raise ValueError(f"invalid double {_snippet(raw)}") from None
        _setattr(self, "text", raw)

    def _key(self) -> tuple[bytes]:
        return (self.text,)

    @property
    def value(self) -> float:
        return float(self.text)


class Boolean(Reply):
    """RESP3 boolean (``#t`` / ``#f``); truthiness follows the value."""

    __slots__ = ("value",)
    __match_args__ = ("value",)
    value: bool

    def __init__(self, value: bool) -> None:
        if type(value) is not bool:
            raise TypeError(f"Boolean.value must be bool, not {type(value).__name__}")
        _setattr(self, "value", value)

    def _key(self) -> tuple[bool]:
        return (self.value,)

    def __bool__(self) -> bool:
        return self.value


class BigNumber(Reply):
    """RESP3 big number (``(``), kept as its wire text."""

    __slots__ = ("text",)
    __match_args__ = ("text",)
    text: bytes

    def __init__(self, text: BytesLike) -> None:
        raw = _as_bytes(text, "BigNumber.text")
        try:
            _strict_int(raw, "big number")
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None
        _setattr(self, "text", raw)

    def _key(self) -> tuple[bytes]:
        return (self.text,)

    @property
    def value(self) -> int:
        return int(self.text)


class Verbatim(Reply):
    """RESP3 verbatim string (``=``): a 3-byte format (``b"txt"``) and data.

    ``data`` is the payload after the ``"txt:"`` prefix.
    """

    __slots__ = ("data", "format")
    __match_args__ = ("format", "data")
    format: bytes
    data: bytes

    def __init__(self, format: BytesLike, data: BytesLike) -> None:  # noqa: A002
        fmt = _as_bytes(format, "Verbatim.format")
        if len(fmt) != 3:
            raise ValueError(f"Verbatim format must be 3 bytes, got {fmt!r}")
        _setattr(self, "format", fmt)
        _setattr(self, "data", _as_bytes(data, "Verbatim.data"))

    def _key(self) -> tuple[bytes, bytes]:
        return (self.format, self.data)


def _check_items(items: Iterable[Reply], what: str) -> tuple[Reply, ...]:
    items = tuple(items)
    for item in items:
        if not isinstance(item, Reply):
            raise TypeError(f"{what} items must be Reply, not {type(item).__name__}")
    return items


def _check_pairs(
    pairs: Iterable[tuple[Reply, Reply]], what: str
) -> tuple[tuple[Reply, Reply], ...]:
    result: list[tuple[Reply, Reply]] = []
    for raw in pairs:
        pair = _check_items(raw, what)
        if len(pair) != 2:
            raise ValueError(f"{what} pairs must have 2 items, got {len(pair)}")
        result.append((pair[0], pair[1]))
    return tuple(result)


class _Sequence(Reply):
    __slots__ = ("items",)
    __match_args__ = ("items",)
    items: tuple[Reply, ...]

    def __init__(self, items: Iterable[Reply] = ()) -> None:
        _setattr(self, "items", _check_items(items, type(self).__name__))

    def _key(self) -> tuple[tuple[Reply, ...]]:
        return (self.items,)

    def _children(self) -> tuple[Reply, ...]:
        return self.items


class Array(_Sequence):
    """Array (``*``)."""

    __slots__ = ()


class Set(_Sequence):
    """RESP3 set (``~``); items keep wire order.  Never equal to an Array."""

    __slots__ = ()


class Push(_Sequence):
    """RESP3 out-of-band push message (``>``)."""

    __slots__ = ()


class Map(Reply):
    """RESP3 map (``%``) as ordered ``(key, value)`` pairs (keys may repeat)."""

    __slots__ = ("pairs",)
    __match_args__ = ("pairs",)
    pairs: tuple[tuple[Reply, Reply], ...]

    def __init__(self, pairs: Iterable[tuple[Reply, Reply]] = ()) -> None:
        _setattr(self, "pairs", _check_pairs(pairs, "Map"))

    def _key(self) -> tuple[tuple[tuple[Reply, Reply], ...]]:
        return (self.pairs,)

    def _children(self) -> tuple[Reply, ...]:
        return tuple(x for pair in self.pairs for x in pair)


class Attribute(Reply):
    """RESP3 attribute (``|``) wrapping the reply it annotates."""

    __slots__ = ("pairs", "value")
    __match_args__ = ("pairs", "value")
    pairs: tuple[tuple[Reply, Reply], ...]
    value: Reply

    def __init__(self, pairs: Iterable[tuple[Reply, Reply]], value: Reply) -> None:
        if not isinstance(value, Reply):
            raise TypeError(f"Attribute.value must be Reply, not {type(value).__name__}")
        _setattr(self, "pairs", _check_pairs(pairs, "Attribute"))
        _setattr(self, "value", value)

    def _key(self) -> tuple[tuple[tuple[Reply, Reply], ...], Reply]:
        return (self.pairs, self.value)

    def _children(self) -> tuple[Reply, ...]:
        return (*(x for pair in self.pairs for x in pair), self.value)


# Iterative helpers, so that deeply nested replies never hit the recursion
# limit in ==, repr() or to_python().


def _deep_equal(a: Reply, b: Reply) -> bool:
    todo = [(a, b)]
    while todo:
        x, y = todo.pop()
        if x is y:
            continue
        if type(x) is not type(y):
            return False
        kx = x._children()
        if kx is None:
            if x._key() != y._key():
                return False
            continue
        ky = y._children()
        if len(kx) != len(ky):  # type: ignore[arg-type]
            return False
        todo.extend(zip(kx, ky, strict=True))  # type: ignore[arg-type]
    return True


def _fold(
    root: Reply, leaf: Callable[[Reply], Any], node: Callable[[Reply, list[Any]], Any]
) -> Any:
    """Post-order fold: ``leaf(reply)`` for leaves, ``node(reply, results)``."""
    kids = root._children()
    if kids is None:
        return leaf(root)
    stack: list[tuple[Reply, tuple[Reply, ...], list[Any]]] = [(root, kids, [])]
    while True:
        parent, kids, results = stack[-1]
        i = len(results)
        n = len(kids)
        while i < n:
            child = kids[i]
            ck = child._children()
            if ck is not None:
                stack.append((child, ck, []))
                break
            results.append(leaf(child))
            i += 1
        else:
            stack.pop()
            value = node(parent, results)
            if not stack:
                return value
            stack[-1][2].append(value)


def _tuple_repr(parts: list[str]) -> str:
    if len(parts) == 1:
        return f"({parts[0]},)"
    return f"({', '.join(parts)})"


def _leaf_repr(reply: Reply) -> str:
    return f"{type(reply).__name__}({', '.join(map(repr, reply._key()))})"


def _node_repr(reply: Reply, parts: list[str]) -> str:
    name = type(reply).__name__
    if isinstance(reply, _Sequence):
        return f"{name}({_tuple_repr(parts)})"
    value = parts.pop() if isinstance(reply, Attribute) else None
    pairs = _tuple_repr([f"({k}, {v})" for k, v in zip(parts[::2], parts[1::2], strict=True)])
    return f"{name}({pairs})" if value is None else f"{name}({pairs}, {value})"


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


class _Sentinel(enum.Enum):
    NOT_ENOUGH = "NOT_ENOUGH"

    def __repr__(self) -> str:
        return self.value

    def __bool__(self) -> bool:
        return False


NOT_ENOUGH: Final = _Sentinel.NOT_ENOUGH
"""Returned by :meth:`Reader.gets` when no complete reply is buffered (falsy)."""
if TYPE_CHECKING:
    NotEnoughType: TypeAlias = Literal[_Sentinel.NOT_ENOUGH]


def __getattr__(name: str) -> object:
    """NilKind and NotEnoughType at run time, for callers that use them."""
    if name == "NilKind":
        from typing import Literal
        return Literal["bulk", "array", "null"]
    if name == "NotEnoughType":
        from typing import Literal
        return Literal[_Sentinel.NOT_ENOUGH]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Pre-built replies and fast constructors (bypass __init__ validation: the
# parser has already validated its input).
_NIL_BULK: Final = Nil("bulk")
_NIL_ARRAY: Final = Nil("array")
_NIL_NULL: Final = Nil("null")
_TRUE: Final = Boolean(True)
_FALSE: Final = Boolean(False)
_EMPTY: Final = {t: t(()) for t in (Array, Set, Push)}
_EMPTY_MAP: Final = Map(())

# Slot descriptors' setters: they bypass Reply.__setattr__ (immutability).
_set_status = Status.__dict__["text"].__set__
_set_error = Error.__dict__["text"].__set__
_set_integer = Integer.__dict__["value"].__set__
_set_bulk = Bulk.__dict__["data"].__set__
_set_double = Double.__dict__["text"].__set__
_set_bignum = BigNumber.__dict__["text"].__set__
_set_vformat = Verbatim.__dict__["format"].__set__
_set_vdata = Verbatim.__dict__["data"].__set__
_set_items = _Sequence.__dict__["items"].__set__
_set_pairs = Map.__dict__["pairs"].__set__
_set_apairs = Attribute.__dict__["pairs"].__set__
_set_avalue = Attribute.__dict__["value"].__set__


def _build_sequence(cls: type[_Sequence]) -> Callable[[list[Reply]], Reply]:
    def build(items: list[Reply]) -> Reply:
        reply = _new(cls)
        _set_items(reply, tuple(items))
        return reply

    return build


def _build_map(items: list[Reply]) -> Reply:
    it = iter(items)
    reply = _new(Map)
    _set_pairs(reply, tuple(zip(it, it, strict=False)))
    return reply


def _build_attribute(items: list[Reply]) -> Reply:
    value = items.pop()
    it = iter(items)
    reply = _new(Attribute)
    _set_apairs(reply, tuple(zip(it, it, strict=False)))
    _set_avalue(reply, value)
    return reply


_build_array = _build_sequence(Array)
_build_set = _build_sequence(Set)
_build_push = _build_sequence(Push)


# An aggregate whose header is parsed but whose items are still arriving:
# (finished items, number of items needed, builder).
_Frame: TypeAlias = tuple[list[Reply], int, Callable[[list[Reply]], Reply]]


# type byte -> (builder, multiplier, extra items, empty reply, name)
_AGGREGATES: Final[
    dict[int, tuple[Callable[[list[Reply]], Reply], int, int, Reply | None, str]]
] = {
    ord("*"): (_build_array, 1, 0, _EMPTY[Array], "array"),
    ord("~"): (_build_set, 1, 0, _EMPTY[Set], "set"),
    ord(">"): (_build_push, 1, 0, _EMPTY[Push], "push"),
    ord("%"): (_build_map, 2, 0, _EMPTY_MAP, "map"),
    ord("|"): (_build_attribute, 2, 1, None, "attribute"),
}
_TYPE_BYTES: Final = frozenset(b"+-:$*_,#(=!%~>|")


def _bad_type(t: int) -> ProtocolError:
    if t in b";.":
        return ProtocolError(f"streamed RESP3 chunk/end marker {chr(t)!r} is not supported")
    return ProtocolError(f"invalid RESP type byte {bytes((t,))!r}")


# Bulk strings left in an open aggregate from which a run of them is located
# in C (native/channel/resp_scan.c): a large array's headers are parsed
# there in one call, and only the objects are made here.
_BULK_RUN_MIN = 64


def _take_bulks(buf: bytes, pos: int, room: int, items: list[Reply]) -> int:
    """Append up to `room` plain bulk strings found from buf[pos]; returns
    where they end (pos when none was)."""
    from ._channel import ffi, lib  # the compiled half of the package, loaded on first use

    spans = ffi.new("uint64_t[]", 2 * room)
    nxt = ffi.new("size_t *")
    found = lib.resp_scan_bulks(ffi.from_buffer(buf), len(buf), pos, room, spans, nxt)
    if found:
        offsets = memoryview(ffi.buffer(spans, 16 * found)).cast("Q").tolist()
        new, set_bulk, append = _new, _set_bulk, items.append
        for start, length in zip(offsets[::2], offsets[1::2], strict=True):
            value = new(Bulk)
            set_bulk(value, buf[start:start + length])
            append(value)
    return int(nxt[0])


def _parse(buf: bytes, pos: int, stack: list[_Frame]) -> tuple[Reply | NotEnoughType, int, int]:
    """Parse from ``buf[pos:]`` until one top-level reply is complete.

    Returns ``(reply, new_pos, 0)``, or ``(NOT_ENOUGH, pos, need)`` where
    ``pos`` is the start of the first incomplete element (aggregates already
    opened stay on ``stack`` with their finished items) and ``need`` is the
    buffer length required to make progress, or -1 when a CRLF is missing.
    """
    end = len(buf)
    find = buf.find
    value: Reply
    # The innermost open aggregate, cached in locals (items is None at top level).
    items: list[Reply] | None = None
    need = 0
    build: Callable[[list[Reply]], Reply] = _build_array
    if stack:
        items, need, build = stack[-1]
    while True:
        # Inside a large aggregate: a run of bulk strings at once, all but
        # its last element (which the code below takes, and closes it with).
        if items is not None and need - len(items) > _BULK_RUN_MIN and pos < end \
                and buf[pos] == 36:
            pos = _take_bulks(buf, pos, need - len(items) - 1, items)
        nl = find(b"\r\n", pos + 1)
        if nl < 0:
            if pos < end and buf[pos] not in _TYPE_BYTES:
                raise _bad_type(buf[pos])
            return NOT_ENOUGH, pos, -1
        t = buf[pos]
        if t == 36:  # $ bulk string
            line = buf[pos + 1 : nl]
            n = int(line) if line.isdigit() else _strict_int(line, "bulk length")
            if n >= 0:
                start = nl + 2
                stop = start + n
                if stop + 2 > end:
                    return NOT_ENOUGH, pos, stop + 2
                if buf[stop] != 13 or buf[stop + 1] != 10:
                    raise ProtocolError(f"missing CRLF after bulk string of length {n}")
                value = _new(Bulk)
                _set_bulk(value, buf[start:stop])
                pos = stop + 2
            elif n == -1:
                value = _NIL_BULK
                pos = nl + 2
            else:
                raise ProtocolError(f"invalid bulk length {n}")
        elif t == 58:  # : integer
            line = buf[pos + 1 : nl]
            value = _new(Integer)
            _set_integer(value, int(line) if line.isdigit() else _strict_int(line, "integer"))
            pos = nl + 2
        elif t == 43:  # + status
            value = _new(Status)
            _set_status(value, buf[pos + 1 : nl])
            pos = nl + 2
        elif t in _AGGREGATES:
            agg_build, mult, extra, empty, name = _AGGREGATES[t]
            line = buf[pos + 1 : nl]
            n = int(line) if line.isdigit() else _strict_int(line, f"{name} length")
            pos = nl + 2
            if n > 0 or (extra and n == 0):
                items = []
                need = n * mult + extra
                build = agg_build
                stack.append((items, need, build))
                continue
            if n == 0:
                value = empty  # type: ignore[assignment]
            elif n == -1 and t == 42:
                value = _NIL_ARRAY
            else:
                raise ProtocolError(f"invalid {name} length {n}")
        elif t == 45:  # - error
            value = _new(Error)
            _set_error(value, buf[pos + 1 : nl])
            pos = nl + 2
        elif t == 95:  # _ null
            if nl != pos + 1:
                raise ProtocolError(f"invalid null {_snippet(buf[pos:nl])}")
            value = _NIL_NULL
            pos = nl + 2
        elif t == 44:  # , double
            line = buf[pos + 1 : nl]
            try:
                float(line)
            except ValueError:
                raise ProtocolError(f"invalid double {_snippet(line)}") from None
            value = _new(Double)
            _set_double(value, line)
            pos = nl + 2
        elif t == 35:  # # boolean
            line = buf[pos + 1 : nl]
            if line == b"t":
                value = _TRUE
            elif line == b"f":
                value = _FALSE
            else:
                raise ProtocolError(f"invalid boolean {_snippet(line)}")
            pos = nl + 2
        elif t == 40:  # ( big number
            line = buf[pos + 1 : nl]
            _strict_int(line, "big number")
            value = _new(BigNumber)
            _set_bignum(value, line)
            pos = nl + 2
        elif t == 61 or t == 33:  # = verbatim, ! blob error
            name = "verbatim string" if t == 61 else "blob error"
            line = buf[pos + 1 : nl]
            n = int(line) if line.isdigit() else _strict_int(line, f"{name} length")
            start = nl + 2
            stop = start + n
            if n < 0 or (t == 61 and n < 4):
                raise ProtocolError(f"invalid {name} length {n}")
            if stop + 2 > end:
                return NOT_ENOUGH, pos, stop + 2
            if buf[stop] != 13 or buf[stop + 1] != 10:
                raise ProtocolError(f"missing CRLF after {name} of length {n}")
            if t == 61:
                if buf[start + 3] != 58:
                    raise ProtocolError(
                        f"invalid verbatim string prefix {_snippet(buf[start : start + 4])}"
                    )
                value = _new(Verbatim)
                _set_vformat(value, buf[start : start + 3])
                _set_vdata(value, buf[start + 4 : stop])
            else:
                value = _new(BlobError)
                _set_error(value, buf[start:stop])
            pos = stop + 2
        else:
            raise _bad_type(t)

        # Hand the finished value to the innermost open aggregate(s).
        if items is None:
            return value, pos, 0
        items.append(value)
        while len(items) >= need:
            stack.pop()
            value = build(items)
            if not stack:
                return value, pos, 0
            items, need, build = stack[-1]
            items.append(value)


class Reader:
    """Incremental RESP2/RESP3 reply parser, decoupled from I/O.

    ``feed()`` bytes as they arrive and call ``gets()`` until it returns
    :data:`NOT_ENOUGH`.  Replies may be split at any byte boundary; partially
    parsed aggregates are kept between calls, so nothing is parsed twice.

    Fed chunks are queued and joined only once enough bytes have arrived for
    the element being waited on (a bulk's full length, or any new CRLF for a
    line), so a large bulk fed in many chunks costs one join plus one copy
    for the slice, not quadratic time.

    After a :class:`ProtocolError` the reader is unusable: every further
    ``gets()`` raises the same error (the stream cannot be resynchronised).
    """

    __slots__ = ("_buf", "_chunks", "_error", "_need", "_nl_seen", "_pending", "_pos", "_stack")

    def __init__(self) -> None:
        self._buf = b""  # current contiguous buffer
        self._pos = 0  # parse position in _buf
        self._chunks: list[bytes] = []  # fed data not yet joined into _buf
        self._pending = 0  # total length of _chunks
        self._need = 0  # 0: try to parse; -1: wait for "\n"; n: wait for len(_buf) + _pending >= n
        self._nl_seen = False  # a "\n" arrived while waiting for a line
        self._stack: list[_Frame] = []
        self._error: ProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (copied unless ``data`` is already bytes)."""
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            return
        if self._pos >= len(self._buf) and not self._chunks:
            self._buf = data
            self._pos = 0
            self._need = 0
            return
        self._chunks.append(data)
        self._pending += len(data)
        if self._need == -1 and not self._nl_seen and b"\n" in data:
            self._nl_seen = True

    def gets(self) -> Reply | NotEnoughType:
        """Return the next complete reply, or :data:`NOT_ENOUGH`."""
        if self._error is not None:
            raise self._error
        if self._chunks:
            need = self._need
            if need == -1:
                if not self._nl_seen:
                    return NOT_ENOUGH
            elif len(self._buf) + self._pending < need:
                return NOT_ENOUGH
            pos = self._pos
            head = memoryview(self._buf)[pos:] if pos else self._buf
            self._chunks.insert(0, head)  # type: ignore[arg-type]
            self._buf = b"".join(self._chunks)
            self._chunks.clear()
            self._pending = 0
            self._pos = 0
        elif self._need or self._pos >= len(self._buf):
            return NOT_ENOUGH
        buf = self._buf
        try:
            value, pos, need = _parse(buf, self._pos, self._stack)
        except ProtocolError as exc:
            self._error = exc
            raise
        if value is NOT_ENOUGH:
            self._pos = pos
            self._need = need
            self._nl_seen = False
            return NOT_ENOUGH
        if pos >= len(buf):
            self._buf = b""  # release the (possibly large) consumed buffer
            self._pos = 0
        else:
            self._pos = pos
        self._need = 0
        return value

    def has_data(self) -> bool:
        """True if fed bytes (or a partially parsed reply) remain unreturned."""
        return self._pos < len(self._buf) or bool(self._chunks) or bool(self._stack)


def parse_one(data: bytes) -> Reply:
    """Parse exactly one complete reply from ``data``.

    Raises :class:`ProtocolError` on malformed input, if the reply is
    incomplete, or if bytes remain after it.
    """
    if type(data) is not bytes:
        data = bytes(data)
    reply: Reply
    end = len(data) - 2
    nl = data.find(b"\r\n")
    if nl == end and nl > 0:  # single-line reply
        t = data[0]
        if t == 43:  # +
            reply = _new(Status)
            _set_status(reply, data[1:end])
            return reply
        if t == 58:  # :
            line = data[1:end]
            reply = _new(Integer)
            _set_integer(reply, int(line) if line.isdigit() else _strict_int(line, "integer"))
            return reply
        if t == 45:  # -
            reply = _new(Error)
            _set_error(reply, data[1:end])
            return reply
    elif nl > 0 and data[0] == 36:  # $ with a body
        line = data[1:nl]
        if line.isdigit():
            start = nl + 2
            stop = start + int(line)
            if stop == end and data[stop] == 13 and data[stop + 1] == 10:
                reply = _new(Bulk)
                _set_bulk(reply, data[start:stop])
                return reply
    value, pos, _ = _parse(data, 0, [])
    if value is NOT_ENOUGH:
        raise ProtocolError(f"incomplete reply ({len(data)} bytes)")
    if pos != len(data):
        raise ProtocolError(f"{len(data) - pos} trailing bytes after reply: {_snippet(data[pos:])}")
    return value


# --------------------------------------------------------------------------
# Command encoder
# --------------------------------------------------------------------------

_Arg: TypeAlias = bytes | str | int | float | bytearray | memoryview


def _arg_bytes(arg: object) -> bytes | bytearray | memoryview:
    if isinstance(arg, bytes | bytearray):
        return arg
    if isinstance(arg, str):
        return str.encode(arg)
    if isinstance(arg, bool):
        raise TypeError(
            "encode_command: bool arguments are not allowed; pass int or bytes explicitly"
        )
    # Subclasses (IntEnum, numpy scalars...) are formatted as the base type,
    # not with their own repr().
    if isinstance(arg, int):
        return int.__repr__(arg).encode()
    if isinstance(arg, float):
        return float.__repr__(arg).encode()
    if isinstance(arg, memoryview):
        return arg.cast("B") if arg.c_contiguous else arg.tobytes()
    raise TypeError(
        f"encode_command: unsupported argument type {type(arg).__name__!r} "
        "(expected bytes, str, int, float, bytearray or memoryview)"
    )


def _encode_py(args: tuple[_Arg, ...]) -> bytes:
    parts: list[bytes | bytearray | memoryview] = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        data = _arg_bytes(arg)
        append(b"$%d\r\n" % len(data))
        append(data)
        append(b"\r\n")
    return b"".join(parts)


_HIREDIS_TYPES: Final = frozenset((bytes, str, int, float))
_PROBE: Final = (
    b"SET",
    "k\u00e9y",
    b"\x00\r\n",
    b"",
    0,
    -42,
    2**70,
    1.5,
    0.1,
    -0.0,
    1e100,
    1e-7,
    1e16,
)
_PROBE_SPECIAL: Final = (float("inf"), float("-inf"), float("nan"))


def _load_hiredis_pack() -> Callable[[tuple[Any, ...]], bytes] | None:
    try:
        from hiredis import pack_command
    except ImportError:  # not installed, or too old to have pack_command
        return None
    try:
        for probe in (_PROBE, _PROBE_SPECIAL):
            if pack_command(probe) != _encode_py(probe):
                return None
    except (TypeError, ValueError):
        return None
    return pack_command


_hiredis_pack: Final = _load_hiredis_pack()


def encode_command(*args: _Arg) -> bytes:
    """Encode a command as a RESP multibulk (array of bulk strings).

    ``str`` is UTF-8 encoded, ``int`` uses its decimal form and ``float``
    uses ``repr()`` (as redis-py does); bytes, bytearray and memoryview are
    sent as is.  Other types, including ``bool``, raise :class:`TypeError`.
    An empty command raises :class:`ValueError` (Redis would not reply to
    it).  Uses ``hiredis.pack_command`` when it is installed and was verified
    at import to produce identical bytes.
    """
    if not args:
        raise ValueError("encode_command needs at least one argument")
    if _hiredis_pack is not None:
        for arg in args:
            if type(arg) not in _HIREDIS_TYPES:
                break
        else:
            return _hiredis_pack(args)
    return _encode_py(args)


# --------------------------------------------------------------------------
# Conversion to plain Python values
# --------------------------------------------------------------------------


def to_python(reply: Reply, *, encoding: str | None = None, errors: str = "strict") -> Any:
    """Convert a typed reply into plain Python values.

    Status and Bulk become ``bytes`` (``str`` if ``encoding`` is given),
    Verbatim becomes its payload (format dropped), Integer and BigNumber
    ``int``, Double ``float``, Boolean ``bool``, Nil ``None``, Array and Push
    ``list``, Set a ``set`` (a ``list`` if an item is unhashable), Map a
    ``dict`` (a list of ``(key, value)`` tuples if a key is unhashable), and
    an Attribute the conversion of the reply it annotates.  Errors are not
    raised: :class:`Error`/:class:`BlobError` objects are returned as is.
    """

    def leaf(r: Reply) -> Any:
        t = type(r)
        if t is Bulk or t is Status or t is Verbatim:
            data: bytes = r.data if t is not Status else r.text  # type: ignore[attr-defined]
            return data.decode(encoding, errors) if encoding is not None else data
        if t is Integer or t is Boolean:
            return r.value  # type: ignore[attr-defined]
        if t is Nil:
            return None
        if t is Double or t is BigNumber:
            return r.value  # type: ignore[attr-defined]
        return r  # Error, BlobError

    def node(r: Reply, values: list[Any]) -> Any:
        t = type(r)
        if t is Array or t is Push:
            return values
        if t is Set:
            try:
                return set(values)
            except TypeError:
                return values
        if t is Map:
            pairs = list(zip(values[::2], values[1::2], strict=True))
            try:
                return dict(pairs)
            except TypeError:
                return pairs
        return values[-1]  # Attribute: drop the annotations

    return _fold(reply, leaf, node)
