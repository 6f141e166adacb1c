"""Split a command line into arguments the way redis-cli does (sds's splitargs).

redis-cli reads commands from stdin (and, with --quoted-input, its own argv)
with these rules, so shmcli must too or the same input means different
commands:

- arguments are separated by spaces, tabs, CR or LF; other blanks (\\v, \\f)
  are skipped between arguments but belong to an unquoted argument;
- "double quotes" understand \\n \\r \\t \\b \\a, \\xHH (two hex digits) and
  a backslash before any other character;
- 'single quotes' understand only \\' ;
- a closing quote must be followed by a blank or the end of the line, and an
  unterminated quote is an error.

A NUL byte ends the line, as it ends the C string redis-cli works on.
"""

from __future__ import annotations

__all__ = ["split_args", "unquote"]

_SEPARATORS = b" \n\r\t"
_BLANKS = b" \n\r\t\v\f"  # C isspace() in the C locale
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
            ord("a"): b"\a"}


def split_args(line: bytes) -> list[bytes] | None:
    """The arguments of `line`, or None when its quoting is invalid."""
    line = line.split(b"\0", 1)[0]
    args: list[bytes] = []
    i, end = 0, len(line)
    while True:
        while i < end and line[i] in _BLANKS:
            i += 1
        if i == end:
            return args
        arg, i = _one_arg(line, i)
        if arg is None:
            return None
        args.append(arg)


def _one_arg(line: bytes, i: int) -> tuple[bytes | None, int]:
    """Read one argument starting at i; returns it and where reading stopped."""
    out = bytearray()
    end = len(line)
    while i < end and line[i] not in _SEPARATORS:
        ch = line[i]
        if ch == ord('"'):
            i = _double_quoted(line, i + 1, out)
        elif ch == ord("'"):
            i = _single_quoted(line, i + 1, out)
        else:
            out.append(ch)
            i += 1
            continue
        if i < 0:
            return None, end
        return bytes(out), i  # a closing quote ends the argument
    return bytes(out), i


def _closes(line: bytes, i: int) -> int:
    """After a closing quote at i: the next position, or -1 when it is glued
    to more text (redis-cli refuses "a"b)."""
    if i + 1 < len(line) and line[i + 1] not in _BLANKS:
        return -1
    return i + 1


def _double_quoted(line: bytes, i: int, out: bytearray) -> int:
    end = len(line)
    while i < end:
        ch = line[i]
        if ch == ord("\\") and i + 3 < end and line[i + 1] == ord("x") \
                and line[i + 2] in _HEX and line[i + 3] in _HEX:
            out.append(int(line[i + 2:i + 4], 16))
            i += 4
        elif ch == ord("\\") and i + 1 < end:
            nxt = line[i + 1]
            out += _ESCAPES.get(nxt, bytes([nxt]))
            i += 2
        elif ch == ord('"'):
            return _closes(line, i)
        else:
            out.append(ch)
            i += 1
    return -1  # unterminated


def _single_quoted(line: bytes, i: int, out: bytearray) -> int:
    end = len(line)
    while i < end:
        ch = line[i]
        if ch == ord("\\") and i + 1 < end and line[i + 1] == ord("'"):
            out.append(ord("'"))
            i += 2
        elif ch == ord("'"):
            return _closes(line, i)
        else:
            out.append(ch)
            i += 1
    return -1  # unterminated


def unquote(text: bytes) -> bytes | None:
    """redis-cli's unquoteCString: `text` must split into exactly one argument."""
    args = split_args(text)
    return args[0] if args is not None and len(args) == 1 else None
