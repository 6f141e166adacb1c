"""Tests for shmcli.resp: typed RESP2/RESP3 parsing, encoding, conversion.

No server needed: everything is checked against hand-written wire bytes.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import random

import pytest

from shmcli import resp
from shmcli.resp import (
    NOT_ENOUGH,
    Array,
    Attribute,
    BigNumber,
    BlobError,
    Boolean,
    Bulk,
    Double,
    Error,
    Integer,
    Map,
    Nil,
    ProtocolError,
    Push,
    Reader,
    Reply,
    Set,
    Status,
    Verbatim,
    encode_command,
    parse_one,
    to_python,
)


def read_all(data: bytes) -> list[Reply]:
    """Feed everything at once and drain the reader."""
    reader = Reader()
    reader.feed(data)
    out = []
    while (reply := reader.gets()) is not NOT_ENOUGH:
        out.append(reply)
    assert not reader.has_data()
    return out


def read_in_pieces(data: bytes, sizes: list[int] | None = None) -> list[Reply]:
    """Feed ``data`` in pieces (1 byte each by default), draining after each."""
    reader = Reader()
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else 1
        i += 1
        reader.feed(data[pos : pos + size])
        pos += size
        while (reply := reader.gets()) is not NOT_ENOUGH:
            out.append(reply)
    assert not reader.has_data()
    return out


# One wire encoding and the expected typed reply, for every type.
CASES: list[tuple[bytes, Reply]] = [
    # RESP2
    (b"+OK\r\n", Status(b"OK")),
    (b"+\r\n", Status(b"")),
    (b"-ERR unknown command 'foo'\r\n", Error(b"ERR unknown command 'foo'")),
    (b":0\r\n", Integer(0)),
    (b":-42\r\n", Integer(-42)),
    (b":+7\r\n", Integer(7)),
    (b":9223372036854775807\r\n", Integer(2**63 - 1)),
    (b"$3\r\nbar\r\n", Bulk(b"bar")),
    (b"$0\r\n\r\n", Bulk(b"")),
    (b"$-1\r\n", Nil("bulk")),
    (b"*-1\r\n", Nil("array")),
    (b"*0\r\n", Array(())),
    (b"*2\r\n$1\r\na\r\n:1\r\n", Array((Bulk(b"a"), Integer(1)))),
    # RESP3
    (b"_\r\n", Nil("null")),
    (b",1.5\r\n", Double(b"1.5")),
    (b",10\r\n", Double(b"10")),
    (b",-0.25e3\r\n", Double(b"-0.25e3")),
    (b",inf\r\n", Double(b"inf")),
    (b",-inf\r\n", Double(b"-inf")),
    (b",nan\r\n", Double(b"nan")),
    (b"#t\r\n", Boolean(True)),
    (b"#f\r\n", Boolean(False)),
    (
        b"(3492890328409238509324850943850943825024385\r\n",
        BigNumber(b"3492890328409238509324850943850943825024385"),
    ),
    (b"(-1\r\n", BigNumber(b"-1")),
    (b"=15\r\ntxt:Some string\r\n", Verbatim(b"txt", b"Some string")),
    (b"=4\r\nmkd:\r\n", Verbatim(b"mkd", b"")),
    (b"!21\r\nSYNTAX invalid syntax\r\n", BlobError(b"SYNTAX invalid syntax")),
    (b"%0\r\n", Map(())),
    (b"~0\r\n", Set(())),
    (b">0\r\n", Push(())),
    (
        b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#f\r\n",
        Map(((Status(b"first"), Integer(1)), (Bulk(b"second"), Boolean(False)))),
    ),
    (b"~3\r\n+a\r\n:1\r\n,2.5\r\n", Set((Status(b"a"), Integer(1), Double(b"2.5")))),
    (
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n",
        Push((Bulk(b"message"), Bulk(b"ch"), Bulk(b"hello"))),
    ),
    (
        b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
        Attribute(
            (
                (
                    Status(b"key-popularity"),
                    Map(((Bulk(b"a"), Double(b"0.1923")), (Bulk(b"b"), Double(b"0.0012")))),
                ),
            ),
            Array((Integer(2039123), Integer(9543892))),
        ),
    ),
    (b"|0\r\n:1\r\n", Attribute((), Integer(1))),
]


@pytest.mark.parametrize(("wire", "expected"), CASES, ids=[repr(c[0][:24]) for c in CASES])
def test_every_type_parse_one(wire: bytes, expected: Reply) -> None:
    reply = parse_one(wire)
    assert reply == expected
    assert type(reply) is type(expected)


@pytest.mark.parametrize(("wire", "expected"), CASES, ids=[repr(c[0][:24]) for c in CASES])
def test_every_type_reader_whole_and_bytewise(wire: bytes, expected: Reply) -> None:
    assert read_all(wire) == [expected]
    assert read_in_pieces(wire) == [expected]
    # Same reply three times in one stream, fed in awkward piece sizes.
    assert read_in_pieces(wire * 3, [2, 3, 5]) == [expected] * 3


def test_nil_variants_are_distinct_and_falsy() -> None:
    bulk, array, null = parse_one(b"$-1\r\n"), parse_one(b"*-1\r\n"), parse_one(b"_\r\n")
    assert (bulk.kind, array.kind, null.kind) == ("bulk", "array", "null")  # type: ignore[attr-defined]
    assert bulk != array != null != bulk
    assert bulk is Nil("bulk")  # one instance per kind
    assert not bulk
    assert not array
    assert not null
    with pytest.raises(ValueError, match="kind"):
        Nil("nothing")  # type: ignore[arg-type]


def test_nested_aggregates() -> None:
    wire = (
        b"*3\r\n"
        b"*2\r\n:1\r\n*1\r\n%1\r\n+k\r\n~2\r\n$1\r\nx\r\n_\r\n"
        b"*0\r\n"
        b"%1\r\n*2\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:10\r\n$1\r\nv\r\n"
    )
    expected = Array(
        (
            Array((Integer(1), Array((Map(((Status(b"k"), Set((Bulk(b"x"), Nil("null")))),)),)))),
            Array(()),
            Map(
                (
                    (
                        Array((Integer(1), Integer(2))),
                        Attribute(((Status(b"ttl"), Integer(10)),), Bulk(b"v")),
                    ),
                )
            ),
        )
    )
    assert parse_one(wire) == expected
    assert read_in_pieces(wire) == [expected]


def test_attribute_inside_aggregate_annotates_one_element() -> None:
    wire = b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n"
    assert parse_one(wire) == Array(
        (Attribute(((Status(b"a"), Status(b"b")),), Integer(1)), Integer(2))
    )


def test_binary_bulks() -> None:
    payload = b"\x00a\r\nb\r\n\r\n\x00\xff\r"
    wire = b"$%d\r\n%s\r\n" % (len(payload), payload)
    assert parse_one(wire) == Bulk(payload)
    assert read_in_pieces(wire) == [Bulk(payload)]
    # a bulk that is only CRLFs, inside an array, next to a verbatim with CRLF
    wire = b"*2\r\n$4\r\n\r\n\r\n\r\n=9\r\ntxt:\r\n\x00\r\n\r\n"
    expected = Array((Bulk(b"\r\n\r\n"), Verbatim(b"txt", b"\r\n\x00\r\n")))
    assert parse_one(wire) == expected
    assert read_in_pieces(wire) == [expected]


def test_all_256_byte_values_in_bulk() -> None:
    payload = bytes(range(256)) * 4
    assert parse_one(b"$1024\r\n" + payload + b"\r\n") == Bulk(payload)


def test_large_bulk_fed_in_chunks() -> None:
    size = 64 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    stream = b"$%d\r\n" % size + payload + b"\r\n+after\r\n"
    chunk = 256 * 1024
    reader = Reader()
    replies = []
    for pos in range(0, len(stream), chunk):
        reader.feed(stream[pos : pos + chunk])
        if pos == 32 * chunk:
            # White box: the queued chunks are not joined while the bulk is
            # known to be incomplete (that is what keeps this linear).
            assert len(reader._buf) <= chunk
        while (reply := reader.gets()) is not NOT_ENOUGH:
            replies.append(reply)
    assert len(replies) == 2
    bulk, after = replies
    assert isinstance(bulk, Bulk)
    assert len(bulk.data) == size
    assert bulk.data == payload
    assert after == Status(b"after")
    assert not reader.has_data()


def test_large_array_fed_in_chunks() -> None:
    n = 100_000
    stream = b"*%d\r\n" % n + b"".join(b"$%d\r\n%d\r\n" % (len(str(i)), i) for i in range(n))
    replies = read_in_pieces(stream, [4096])
    assert len(replies) == 1
    (arr,) = replies
    assert isinstance(arr, Array)
    assert [int(b.data) for b in arr.items] == list(range(n))  # type: ignore[attr-defined]


def test_bulk_runs_located_in_c_parse_as_the_python_parser_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Large aggregates hand their runs of bulk strings to C
    (native/channel/resp_scan.c); the replies, protocol errors included,
    must be the pure-Python parser's, whatever the cuts."""
    rng = random.Random(99)
    elements = [b"$%d\r\n%s\r\n" % (len(v), v) for v in
                (bytes(rng.randrange(256) for _ in range(rng.randrange(12))) for _ in range(600))]
    for at, odd in ((150, b"$-1\r\n"), (300, b":42\r\n"), (301, b"*2\r\n$1\r\na\r\n$0\r\n\r\n"),
                    (450, b"+ok\r\n"), (451, b"$0\r\n\r\n")):
        elements.insert(at, odd)
    streams = [b"*%d\r\n" % len(elements) + b"".join(elements) + b"+next\r\n",
               b"%%%d\r\n" % (len(elements) // 2) + b"".join(elements[:len(elements) // 2 * 2]),
               b"*101\r\n" + b"$3\r\nabc\r\n" * 100 + b"$03\r\nabc\r\n",  # a leading zero
               b"*101\r\n" + b"$3\r\nabc\r\n" * 100 + b"$-5\r\n",
               b"*101\r\n" + b"$3\r\nabc\r\n" * 99 + b"$3\r\nabcd\r\n"]

    def parsed(stream: bytes, bulk_run_min: int) -> list[object]:
        monkeypatch.setattr(resp, "_BULK_RUN_MIN", bulk_run_min)
        out: list[object] = []
        for pieces in ([len(stream)], [4096], [7, 1, 300]):
            try:
                out.append(read_in_pieces(stream, pieces))
            except ProtocolError as exc:
                out.append(str(exc))
        return out

    for stream in streams:
        assert parsed(stream, 8) == parsed(stream, 10**9)


COMPLEX_STREAM = (
    b"+OK\r\n"
    b">4\r\n+pubsub\r\n+message\r\n+chan\r\n$5\r\nhe\r\no\r\n"
    b"%3\r\n+server\r\n$5\r\nredis\r\n+proto\r\n:3\r\n+modules\r\n*0\r\n"
    b"|1\r\n+meta\r\n#t\r\n~2\r\n(12345678901234567890\r\n,3.14\r\n"
    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    b"!5\r\nE\r\n\r\n\r\n"
    b"=8\r\ntxt:a\r\nb\r\n"
    b"_\r\n$-1\r\n*-1\r\n"
    b"*2\r\n*2\r\n*0\r\n%0\r\n~0\r\n"
)
COMPLEX_EXPECTED: list[Reply] = [
    Status(b"OK"),
    Push((Status(b"pubsub"), Status(b"message"), Status(b"chan"), Bulk(b"he\r\no"))),
    Map(
        (
            (Status(b"server"), Bulk(b"redis")),
            (Status(b"proto"), Integer(3)),
            (Status(b"modules"), Array(())),
        )
    ),
    Attribute(
        ((Status(b"meta"), Boolean(True)),),
        Set((BigNumber(b"12345678901234567890"), Double(b"3.14"))),
    ),
    Error(b"WRONGTYPE Operation against a key holding the wrong kind of value"),
    BlobError(b"E\r\n\r\n"),
    Verbatim(b"txt", b"a\r\nb"),
    Nil("null"),
    Nil("bulk"),
    Nil("array"),
    Array((Array((Array(()), Map(()))), Set(()))),
]


def test_complex_stream_byte_by_byte() -> None:
    assert read_all(COMPLEX_STREAM) == COMPLEX_EXPECTED
    assert read_in_pieces(COMPLEX_STREAM) == COMPLEX_EXPECTED


def test_complex_stream_random_splits() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(COMPLEX_STREAM)), rng.randint(1, 20)))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(COMPLEX_STREAM)], strict=True)]
        reader = Reader()
        got = []
        pos = 0
        for size in sizes:
            piece = COMPLEX_STREAM[pos : pos + size]
            pos += size
            # mix input types: bytes, bytearray and memoryview
            reader.feed(rng.choice([bytes, bytearray, memoryview])(piece))
            if rng.random() < 0.7:  # sometimes feed several pieces before reading
                while (reply := reader.gets()) is not NOT_ENOUGH:
                    got.append(reply)
        while (reply := reader.gets()) is not NOT_ENOUGH:
            got.append(reply)
        assert got == COMPLEX_EXPECTED


def test_line_split_between_cr_and_lf() -> None:
    reader = Reader()
    reader.feed(b"+hel")
    assert reader.gets() is NOT_ENOUGH
    reader.feed(b"lo\r")
    assert reader.gets() is NOT_ENOUGH
    assert reader.has_data()
    reader.feed(b"\n:")
    assert reader.gets() == Status(b"hello")
    assert reader.gets() is NOT_ENOUGH
    reader.feed(b"5\r\n")
    assert reader.gets() == Integer(5)
    assert not reader.has_data()


def test_reader_partial_aggregate_and_has_data() -> None:
    reader = Reader()
    assert not reader.has_data()
    assert reader.gets() is NOT_ENOUGH
    reader.feed(b"*2\r\n")
    assert reader.gets() is NOT_ENOUGH
    assert reader.has_data()  # a reply is partially parsed
    reader.feed(b":1\r\n")
    assert reader.gets() is NOT_ENOUGH
    reader.feed(b":2\r\n+next\r\n")
    assert reader.gets() == Array((Integer(1), Integer(2)))
    assert reader.has_data()
    assert reader.gets() == Status(b"next")
    assert not reader.has_data()


def test_reader_copies_mutable_input() -> None:
    reader = Reader()
    data = bytearray(b"$3\r\nabc\r\n")
    reader.feed(data)
    data[4:7] = b"XYZ"
    assert reader.gets() == Bulk(b"abc")


def test_not_enough_sentinel() -> None:
    assert not NOT_ENOUGH
    assert repr(NOT_ENOUGH) == "NOT_ENOUGH"
    assert NOT_ENOUGH is resp.NOT_ENOUGH
    # replies can be falsy, but are never the sentinel
    reader = Reader()
    reader.feed(b"#f\r\n")
    reply = reader.gets()
    assert reply is not NOT_ENOUGH
    assert reply == Boolean(False)
    assert not reply


@pytest.mark.parametrize("depth", [1000, 20000])
def test_deep_nesting(depth: int) -> None:
    wire = b"*1\r\n" * depth + b":7\r\n"
    reply = parse_one(wire)
    assert read_in_pieces(wire, [3]) == [reply]
    node = reply
    for _ in range(depth):
        assert isinstance(node, Array)
        assert len(node.items) == 1
        node = node.items[0]
    assert node == Integer(7)
    # equality, hashing, repr and conversion must not recurse either
    other = parse_one(wire)
    assert reply == other
    assert hash(reply) == hash(other)
    assert reply != parse_one(b"*1\r\n" * depth + b":8\r\n")
    assert repr(reply).startswith("Array((Array((")
    assert repr(reply).count("Array(") == depth
    value = to_python(reply)
    for _ in range(depth):
        assert isinstance(value, list)
        value = value[0]
    assert value == 7


def test_deep_mixed_nesting() -> None:
    level = b"%1\r\n+k\r\n~1\r\n|1\r\n+a\r\n+b\r\n"
    reply = parse_one(level * 2000 + b"_\r\n")
    assert reply == parse_one(level * 2000 + b"_\r\n")
    assert reply != parse_one(level * 2000 + b"$-1\r\n")
    node = reply
    for _ in range(2000):
        assert isinstance(node, Map)
        ((key, value),) = node.pairs
        assert key == Status(b"k")
        assert isinstance(value, Set)
        (node,) = value.items
        assert isinstance(node, Attribute)
        node = node.value
    assert node is Nil("null")
    # Python's own parser limits nesting, so only eval() a shallow one.
    shallow = parse_one(level * 10 + b"_\r\n")
    assert eval(repr(shallow), vars(resp)) == shallow


# ---------------------------------------------------------------------------
# Equality, hashing, immutability, repr
# ---------------------------------------------------------------------------


def test_equality_semantics() -> None:
    assert Status(b"OK") == Status(b"OK")
    assert Status(b"OK") != Bulk(b"OK")
    assert Error(b"ERR x") != BlobError(b"ERR x")
    assert Array((Integer(1),)) != Set((Integer(1),))
    assert Array((Integer(1),)) != Push((Integer(1),))
    assert Array((Integer(1), Integer(2))) != Array((Integer(2), Integer(1)))
    # type matters at every depth, not only at the top
    assert Array((Status(b"OK"),)) != Array((Bulk(b"OK"),))
    assert Map(((Bulk(b"k"), Array(())),)) != Map(((Bulk(b"k"), Set(())),))
    assert Attribute((), Error(b"E")) != Attribute((), BlobError(b"E"))
    assert Array((Integer(1),)) == Array([Integer(1)])
    assert Integer(1) != Boolean(True)
    assert Integer(1) != BigNumber(b"1")
    assert Double(b"1.10") != Double(b"1.1")
    assert Double(b"1.5") == Double(b"1.5")
    assert Double(b"nan") == Double(b"nan")  # by wire text, unlike float nan
    assert Map(((Status(b"a"), Integer(1)), (Status(b"b"), Integer(2)))) != Map(
        ((Status(b"b"), Integer(2)), (Status(b"a"), Integer(1)))
    )
    assert Verbatim(b"txt", b"x") != Verbatim(b"mkd", b"x")
    assert Attribute((), Integer(1)) != Integer(1)
    assert Attribute(((Status(b"a"), Status(b"b")),), Integer(1)) != Attribute(
        ((Status(b"a"), Status(b"c")),), Integer(1)
    )
    # never equal to plain Python values
    assert Status(b"OK") != b"OK"
    assert Integer(1) != 1
    assert Nil("null") is not None
    assert Nil("null") != None  # noqa: E711 - testing __eq__ itself


def test_hash_consistent_with_equality() -> None:
    replies = [parse_one(wire) for wire, _ in CASES]
    again = [parse_one(wire) for wire, _ in CASES]
    for a, b in zip(replies, again, strict=True):
        assert hash(a) == hash(b)
    assert len({Status(b"OK"), Status(b"OK"), Bulk(b"OK")}) == 2
    assert len({Array(()), Set(()), Push(()), Array(())}) == 3
    assert {Double(b"1.0"): 1}.get(Double(b"1.0")) == 1


def test_immutable() -> None:
    s = Status(b"OK")
    with pytest.raises(AttributeError):
        s.text = b"NO"
    with pytest.raises(AttributeError):
        del s.text
    arr = parse_one(b"*1\r\n:1\r\n")
    with pytest.raises(AttributeError):
        arr.items = ()
    with pytest.raises(AttributeError):
        arr.extra = 1
    assert isinstance(arr.items, tuple)  # type: ignore[attr-defined]


def test_repr_roundtrip_and_pickle() -> None:
    for reply in [r for _, r in CASES] + COMPLEX_EXPECTED:
        assert eval(repr(reply), vars(resp)) == reply
        assert pickle.loads(pickle.dumps(reply)) == reply
    assert repr(Status(b"OK")) == "Status(b'OK')"
    assert repr(Nil("bulk")) == "Nil('bulk')"
    assert repr(Array((Integer(1),))) == "Array((Integer(1),))"
    assert pickle.loads(pickle.dumps(Nil("array"))) is Nil("array")


def test_constructor_validation() -> None:
    with pytest.raises(TypeError):
        Status("OK")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Bulk(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Integer(True)
    with pytest.raises(TypeError):
        Boolean(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Array((b"raw",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pairs"):
        Map(((Integer(1),),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format"):
        Verbatim(b"text", b"x")
    with pytest.raises(ValueError, match="double"):
        Double(b"one")
    with pytest.raises(ValueError, match="big number"):
        BigNumber(b"12a")
    assert Bulk(bytearray(b"x")) == Bulk(b"x")
    assert type(Bulk(memoryview(b"x")).data) is bytes


def test_accessors() -> None:
    err = parse_one(b"-WRONGPASS invalid username-password pair\r\n")
    assert isinstance(err, Error)
    assert err.code == "WRONGPASS"
    assert err.message == "WRONGPASS invalid username-password pair"
    assert str(err) == "WRONGPASS invalid username-password pair"
    assert Error(b"ERR").code == "ERR"
    blob = parse_one(b"!9\r\nERR x\r\nyz\r\n")
    assert isinstance(blob, Error)
    assert isinstance(blob, BlobError)
    assert blob.code == "ERR"
    assert Double(b"1.5").value == 1.5
    assert Double(b"inf").value == math.inf
    assert Double(b"-inf").value == -math.inf
    assert math.isnan(Double(b"nan").value)
    big = parse_one(b"(-3492890328409238509324850943850943825024385\r\n")
    assert isinstance(big, BigNumber)
    assert big.value == -3492890328409238509324850943850943825024385
    assert bool(Boolean(True))
    assert not Boolean(False)


def test_match_args() -> None:
    match parse_one(b"=7\r\ntxt:abc\r\n"):
        case Verbatim(fmt, data):
            assert (fmt, data) == (b"txt", b"abc")
        case _:
            pytest.fail("no match")
    match parse_one(b"*2\r\n+a\r\n:1\r\n"):
        case Array((Status(text), Integer(value))):
            assert (text, value) == (b"a", 1)
        case _:
            pytest.fail("no match")


# ---------------------------------------------------------------------------
# Protocol errors
# ---------------------------------------------------------------------------

BAD = [
    (b"?what\r\n", "type byte"),
    (b"\r\n", "type byte"),
    (b"x", "type byte"),
    (b"$abc\r\n", "bulk length"),
    (b"$-2\r\n", "bulk length"),
    (b"$ 3\r\nabc\r\n", "bulk length"),
    (b"$1_0\r\n0123456789\r\n", "bulk length"),
    (b"$\r\n\r\n", "bulk length"),
    (b"$3\r\nabcde\r\n", "CRLF"),
    (b"$3\r\nabc\n\r", "CRLF"),
    (b"*x\r\n", "array length"),
    (b"*-2\r\n", "array length"),
    (b"%-1\r\n", "map length"),
    (b"~-1\r\n", "set length"),
    (b":1.5\r\n", "integer"),
    (b":\r\n", "integer"),
    (b":--1\r\n", "integer"),
    (b"#x\r\n", "boolean"),
    (b"#\r\n", "boolean"),
    (b"_x\r\n", "null"),
    (b",abc\r\n", "double"),
    (b",\r\n", "double"),
    (b"(1.0\r\n", "big number"),
    (b"=3\r\ntxt\r\n", "verbatim"),
    (b"=5\r\ntxt-x\r\n", "verbatim"),
    (b"!-1\r\n", "blob error"),
    (b"$?\r\n;3\r\nabc\r\n;0\r\n", "streamed"),
    (b"*?\r\n:1\r\n.\r\n", "streamed"),
    (b"*2\r\n:1\r\n?\r\n", "type byte"),
]


@pytest.mark.parametrize(("wire", "message"), BAD, ids=[repr(b[0]) for b in BAD])
def test_protocol_errors(wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_one(wire)
    reader = Reader()
    reader.feed(wire)
    with pytest.raises(ProtocolError, match=message):
        reader.gets()
    # the reader stays failed: the stream cannot be resynchronised
    reader.feed(b"+OK\r\n")
    with pytest.raises(ProtocolError, match=message):
        reader.gets()


def test_protocol_error_is_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


def test_bad_type_byte_detected_before_line_is_complete() -> None:
    reader = Reader()
    reader.feed(b"@")
    with pytest.raises(ProtocolError, match="type byte"):
        reader.gets()


@pytest.mark.parametrize(
    "wire",
    [b"", b"+OK", b"+OK\r", b"$3\r\nab", b"$3\r\nabc\r", b"*2\r\n:1\r\n", b"|1\r\n+a\r\n+b\r\n"],
)
def test_parse_one_incomplete(wire: bytes) -> None:
    with pytest.raises(ProtocolError, match="incomplete"):
        parse_one(wire)


@pytest.mark.parametrize(
    "wire", [b"+OK\r\n+OK\r\n", b":1\r\nx", b"$3\r\nbar\r\n\r\n", b"*0\r\n:1\r\n", b"_\r\n "]
)
def test_parse_one_trailing_bytes(wire: bytes) -> None:
    with pytest.raises(ProtocolError, match="trailing"):
        parse_one(wire)


def test_parse_one_accepts_bytes_like() -> None:
    assert parse_one(bytearray(b"+PONG\r\n")) == Status(b"PONG")  # type: ignore[arg-type]
    assert parse_one(memoryview(b"$3\r\nbar\r\n")) == Bulk(b"bar")  # type: ignore[arg-type]
    reply = parse_one(b"$3\r\nbar\r\n")
    assert type(reply.data) is bytes  # type: ignore[attr-defined]


def test_fast_paths_agree_with_general_parser() -> None:
    # parse_one fast-paths these shapes; the Reader always uses the general parser
    wires = [
        b"+PONG\r\n",
        b"+\r\n",
        b":1\r\n",
        b":-1\r\n",
        b":+1\r\n",
        b"-ERR x\r\n",
        b"$3\r\nbar\r\n",
        b"$0\r\n\r\n",
        b"$4\r\na\r\nb\r\n",
        b"$-1\r\n",
        b"+a\nb\r\n",
    ]
    for wire in wires:
        assert parse_one(wire) == read_all(wire)[0], wire
    for wire in [b":1_0\r\n", b": 1\r\n", b"$1_0\r\n0123456789\r\n", b"$3\r\nbarX\r\n"]:
        with pytest.raises(ProtocolError):
            parse_one(wire)


# ---------------------------------------------------------------------------
# encode_command
# ---------------------------------------------------------------------------


def test_encode_command_expected_bytes() -> None:
    assert encode_command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert (
        encode_command(b"SET", b"key", b"value")
        == b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
    )
    assert (
        encode_command("SET", "k\u00e9y", "")
        == b"*3\r\n$3\r\nSET\r\n$4\r\nk\xc3\xa9y\r\n$0\r\n\r\n"
    )
    assert encode_command("INCRBY", "n", -42) == b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$3\r\n-42\r\n"
    assert encode_command("X", 2**70) == b"*2\r\n$1\r\nX\r\n$22\r\n1180591620717411303424\r\n"
    assert encode_command("X", 1.5, 0.1, 1e100, -0.0) == (
        b"*5\r\n$1\r\nX\r\n$3\r\n1.5\r\n$3\r\n0.1\r\n$6\r\n1e+100\r\n$4\r\n-0.0\r\n"
    )
    assert (
        encode_command("X", float("inf"), float("-inf"))
        == b"*3\r\n$1\r\nX\r\n$3\r\ninf\r\n$4\r\n-inf\r\n"
    )
    assert encode_command("SET", bytearray(b"k"), memoryview(b"\x00\r\n")) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\x00\r\n\r\n"
    )


def test_encode_command_subclasses_use_base_formatting() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 5

    class MyFloat(float):
        def __repr__(self) -> str:
            return "MyFloat!"

    class MyStr(str):
        __slots__ = ()

    assert encode_command("X", Color.RED, MyFloat(2.5), MyStr("s")) == (
        b"*4\r\n$1\r\nX\r\n$1\r\n5\r\n$3\r\n2.5\r\n$1\r\ns\r\n"
    )


def test_encode_command_memoryview_formats() -> None:
    import array

    ints = array.array("i", [1, 2])
    assert encode_command(memoryview(ints)) == b"*1\r\n$%d\r\n%s\r\n" % (
        ints.itemsize * 2,
        ints.tobytes(),
    )
    strided = memoryview(b"abcdef")[::2]
    assert encode_command(strided) == b"*1\r\n$3\r\nace\r\n"


@pytest.mark.parametrize("bad", [True, None, [b"a"], {"a": 1}, object(), 1j])
def test_encode_command_rejects_other_types(bad: object) -> None:
    with pytest.raises(TypeError):
        encode_command("SET", "k", bad)  # type: ignore[arg-type]


def test_encode_command_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_command()


def test_encode_command_backends_agree() -> None:
    commands = [
        (b"GET", b"foo"),
        ("SET", "k\u00e9y", 1, -1, 0, 1.25, 1e-7, 1e16, 123.0, float("nan"), b"\x00\xff"),
        ("A" * 1000, b"B" * 100_000),
    ]
    for args in commands:
        assert encode_command(*args) == resp._encode_py(args)
    if importlib.util.find_spec("hiredis") is not None:
        assert resp._hiredis_pack is not None, "hiredis is installed but was not selected"


def test_encode_command_roundtrip_through_parser() -> None:
    args = ("HSET", "h", b"\r\n", 7, 2.5, bytearray(b"ba"), memoryview(b"mv"))
    assert parse_one(encode_command(*args)) == Array(
        (
            Bulk(b"HSET"),
            Bulk(b"h"),
            Bulk(b"\r\n"),
            Bulk(b"7"),
            Bulk(b"2.5"),
            Bulk(b"ba"),
            Bulk(b"mv"),
        )
    )


# ---------------------------------------------------------------------------
# to_python
# ---------------------------------------------------------------------------


def test_to_python_leaves() -> None:
    assert to_python(Status(b"OK")) == b"OK"
    assert to_python(Bulk(b"\x00x")) == b"\x00x"
    assert to_python(Integer(-3)) == -3
    assert to_python(Nil("bulk")) is None
    assert to_python(Nil("array")) is None
    assert to_python(Nil("null")) is None
    assert to_python(Double(b"2.5")) == 2.5
    assert to_python(Double(b"-inf")) == -math.inf
    assert to_python(Boolean(True)) is True
    assert to_python(Boolean(False)) is False
    assert to_python(BigNumber(b"123456789012345678901234567890")) == 123456789012345678901234567890
    assert to_python(Verbatim(b"txt", b"hello")) == b"hello"
    err = Error(b"ERR boom")
    assert to_python(err) is err
    blob = BlobError(b"ERR boom")
    assert to_python(blob) is blob


def test_to_python_aggregates() -> None:
    assert to_python(parse_one(b"*3\r\n:1\r\n$1\r\na\r\n_\r\n")) == [1, b"a", None]
    assert to_python(Array(())) == []
    assert to_python(Push((Bulk(b"message"),))) == [b"message"]
    s = to_python(parse_one(b"~3\r\n:1\r\n:2\r\n:1\r\n"))
    assert isinstance(s, set)
    assert s == {1, 2}
    unhashable = to_python(parse_one(b"~2\r\n*1\r\n:1\r\n:2\r\n"))
    assert unhashable == [[1], 2]
    m = to_python(parse_one(b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n#t\r\n"))
    assert isinstance(m, dict)
    assert m == {b"a": 1, b"b": [True]}
    assert to_python(Map(())) == {}
    pairs = to_python(parse_one(b"%1\r\n*1\r\n:1\r\n+v\r\n"))
    assert pairs == [([1], b"v")]
    assert to_python(parse_one(b"*2\r\n|1\r\n+ttl\r\n:5\r\n$1\r\nv\r\n:2\r\n")) == [b"v", 2]
    assert to_python(parse_one(b"*2\r\n-ERR x\r\n:1\r\n")) == [Error(b"ERR x"), 1]


def test_to_python_decoding() -> None:
    reply = parse_one(b"*3\r\n+OK\r\n$2\r\n\xc3\xa9\r\n=7\r\ntxt:abc\r\n")
    assert to_python(reply, encoding="utf-8") == ["OK", "\u00e9", "abc"]
    assert to_python(Bulk(b"\xff"), encoding="utf-8", errors="replace") == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        to_python(Bulk(b"\xff"), encoding="utf-8")
