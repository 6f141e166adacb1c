"""The server's own command reference, from COMMAND DOCS.

redis-cli builds its help, hints and completion from COMMAND DOCS, so every
command the server knows (module commands included, ours too) is covered
without a bundled table.  Each command and each subcommand becomes one
`CommandDoc`; the argument syntax is rendered the way redis-cli renders it
("key value [NX|XX] [GET] [EX seconds|...]").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .resp import Array, Bulk, Map, Reply, Set, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from .connection import Connection

_NAMED_TYPES = {"key", "string", "integer", "double", "pattern", "unix-time", "token"}


@dataclass(frozen=True)
class CommandDoc:
    words: tuple[str, ...]  # ("SET",) or ("CONFIG", "GET"), upper case
    params: str = ""
    summary: str = ""
    since: str | None = None
    group: str = ""
    complexity: str = ""

    @property
    def name(self) -> str:
        return " ".join(self.words)


@dataclass
class CommandTable:
    docs: list[CommandDoc] = field(default_factory=list)  # sorted by name

    @property
    def groups(self) -> list[str]:
        return sorted({doc.group for doc in self.docs if doc.group})

    def command_names(self) -> list[str]:
        return [doc.name for doc in self.docs if len(doc.words) == 1]

    def longest_match(self, words: list[bytes] | list[str]) -> CommandDoc | None:
        """The entry whose words start `words` (case-insensitive), preferring
        a subcommand over its container, as redis-cli's hints do."""
        typed = [w.decode(errors="replace") if isinstance(w, bytes) else w for w in words]
        typed = [w.upper() for w in typed]
        best: CommandDoc | None = None
        for doc in self.docs:
            n = len(doc.words)
            if n <= len(typed) and list(doc.words) == typed[:n] \
                    and (best is None or n > len(best.words)):
                best = doc
        return best

    def subcommands(self, command: str) -> list[CommandDoc]:
        upper = command.upper()
        return [doc for doc in self.docs if len(doc.words) == 2 and doc.words[0] == upper]


def _text(reply: Reply | None) -> str:
    if isinstance(reply, Bulk):
        return reply.data.decode(errors="replace")
    if isinstance(reply, Status):
        return reply.text.decode(errors="replace")
    return ""


def _pairs(reply: Reply | None) -> Iterable[tuple[str, Reply]]:
    """Key/value pairs of a RESP3 map or a RESP2 flat array."""
    if isinstance(reply, Map):
        for key, value in reply.items:
            yield _text(key), value
    elif isinstance(reply, Array):
        items = reply.items
        for i in range(0, len(items) - 1, 2):
            yield _text(items[i]), items[i + 1]


def _elements(reply: Reply | None) -> tuple[Reply, ...]:
    return reply.items if isinstance(reply, Array | Set) else ()


def render_arguments(arguments: Reply | None, separator: str = " ") -> str:
    return separator.join(_render_argument(arg) for arg in _elements(arguments))


def _render_argument(arg: Reply) -> str:
    fields = dict(_pairs(arg))
    name = _text(fields.get("name")) or '""'
    kind = _text(fields.get("type"))
    token = _text(fields.get("token")) if "token" in fields else ""
    if "token" in fields and token == "":
        token = '""'
    flags = {_text(flag) for flag in _elements(fields.get("flags"))}
    if kind in _NAMED_TYPES:
        repeat = name
    elif kind == "oneof":
        repeat = render_arguments(fields.get("arguments"), "|")
    elif kind == "block":
        repeat = render_arguments(fields.get("arguments"), " ")
    else:  # pure-token (and anything unknown) shows its token only
        repeat = ""
    if token and kind != "pure-token":
        token += " "
    out = token + repeat
    if "multiple" in flags:
        again = (token if "multiple_token" in flags else "") + repeat
        out += f" [{again} ...]"
    return f"[{out}]" if "optional" in flags else out


def _doc(words: tuple[str, ...], spec: Reply) -> list[CommandDoc]:
    fields = dict(_pairs(spec))
    doc = CommandDoc(words=words, params=render_arguments(fields.get("arguments")),
                     summary=_text(fields.get("summary")),
                     since=_text(fields.get("since")) if "since" in fields else None,
                     group=_text(fields.get("group")),
                     complexity=_text(fields.get("complexity")))
    docs = [doc]
    for sub_name, sub_spec in _pairs(fields.get("subcommands")):
        sub = sub_name.split("|", 1)[-1].upper()
        docs.extend(_doc((words[0], sub), sub_spec))
    return docs


def parse_command_docs(reply: Reply) -> CommandTable:
    """A CommandTable from the reply to COMMAND DOCS (RESP2 or RESP3)."""
    docs: list[CommandDoc] = []
    for name, spec in _pairs(reply):
        docs.extend(_doc((name.upper(),), spec))
    docs.sort(key=lambda doc: doc.name)
    return CommandTable(docs)


class CommandTableCache:
    """COMMAND DOCS is read once per session, when first needed."""

    def __init__(self) -> None:
        self.table: CommandTable | None = None

    def get(self, conn: Connection | None) -> CommandTable:
        if self.table is None:
            if conn is None:
                return CommandTable()  # not connected: no reference (redis-cli has a built-in one)
            reply = conn.execute("COMMAND", "DOCS")
            self.table = parse_command_docs(reply) if isinstance(reply, Array | Map) \
                else CommandTable()
        return self.table
