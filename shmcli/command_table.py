"""The server's own command reference, from COMMAND DOCS, and where it is kept.

redis-cli builds its help, hints and completion from COMMAND DOCS, so every
command the server knows (module commands included, ours too) is covered
without a bundled table.  Each command and each subcommand becomes one
`CommandDoc`; the argument syntax is rendered the way redis-cli renders it
("key value [NX|XX] [GET] [EX seconds|...]").

The table a server gave is kept in the user's cache directory
($XDG_CACHE_HOME/shmcli, else ~/.cache/shmcli), one file per server: its
name, version and loaded modules (from INFO).  So:
- a server already seen costs an INFO, not the COMMAND DOCS reply (about
  100 KB to read and parse);
- with no server, or before a typed AUTH on a server with requirepass, the
  table last used serves help, hints and completion (redis-cli has a table
  built in; shmcli bundles none).
Used by the shell, the stdin mode and one-shot `help`: nothing here draws.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .resp import Array, Bulk, Error, Map, Reply, Set, Status, Verbatim

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from .connection import Connection

_NAMED_TYPES = {"key", "string", "integer", "double", "pattern", "unix-time", "token"}
CACHE_FORMAT = 1  # bumped when the stored fields change: older files are ignored
_FILE_PREFIX = "commands-"


class CommandDoc:
    """One command or subcommand: words ("SET",) or ("CONFIG", "GET"), upper case."""

    __slots__ = ("words", "params", "summary", "since", "group", "complexity")

    def __init__(self, words: tuple[str, ...], params: str = "", summary: str = "",
                 since: str | None = None, group: str = "", complexity: str = "") -> None:
        self.words = words
        self.params = params
        self.summary = summary
        self.since = since
        self.group = group
        self.complexity = complexity

    @property
    def name(self) -> str:
        return " ".join(self.words)

    def fields(self) -> list[object]:
        return [list(self.words), self.params, self.summary, self.since, self.group,
                self.complexity]

    def __repr__(self) -> str:
        return f"CommandDoc({self.name!r}, {self.params!r})"


class CommandTable:
    """Every CommandDoc of a server, sorted by name; `server` names the
    server it came from (see server_identity), None when unknown."""

    __slots__ = ("docs", "server", "_names")

    def __init__(self, docs: Iterable[CommandDoc] = (), server: str | None = None) -> None:
        self.docs = sorted(docs, key=lambda doc: doc.name)
        self.server = server
        self._names: list[str] | None = None

    @property
    def groups(self) -> list[str]:
        return sorted({doc.group for doc in self.docs if doc.group})

    def command_names(self) -> list[str]:
        if self._names is None:
            self._names = [doc.name for doc in self.docs if len(doc.words) == 1]
        return self._names

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


# ---- COMMAND DOCS ----

def _text(reply: Reply | None) -> str:
    if isinstance(reply, Bulk | Verbatim):
        return reply.data.decode(errors="replace")
    if isinstance(reply, Status):
        return reply.text.decode(errors="replace")
    return ""


def _pairs(reply: Reply | None) -> Iterable[tuple[str, Reply]]:
    """Key/value pairs of a RESP3 map or a RESP2 flat array."""
    if isinstance(reply, Map):
        for key, value in reply.pairs:
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


def parse_command_docs(reply: Reply, server: str | None = None) -> CommandTable:
    """A CommandTable from the reply to COMMAND DOCS (RESP2 or RESP3)."""
    docs: list[CommandDoc] = []
    for name, spec in _pairs(reply):
        docs.extend(_doc((name.upper(),), spec))
    return CommandTable(docs, server)


# ---- which server ----

def _safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in text)


def server_identity(info: Reply) -> str | None:
    """"redis-7.0.15-1a2b3c4d" from an INFO server+modules reply: the server's
    name and version and a checksum of its modules' names and versions (a
    module's commands are in COMMAND DOCS too); None when it says no version."""
    import zlib  # here: only a live server's table needs it

    if not isinstance(info, Bulk | Verbatim):
        return None
    fields: dict[str, str] = {}
    modules: list[str] = []
    for line in info.data.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key == "module":  # module:name=shm,ver=1,api=1,...
            module = dict(part.partition("=")[::2] for part in value.split(","))
            modules.append(f"{module.get('name', '')}={module.get('ver', '')}")
        elif value:
            fields[key] = value.strip()
    name = fields.get("server_name", "redis")
    version = fields.get(f"{name}_version") or fields.get("redis_version")
    if not version:
        return None
    checksum = zlib.crc32(",".join(sorted(modules)).encode())
    return f"{_safe(name)}-{_safe(version)}-{checksum:08x}"


# ---- the cache directory ----

def cache_dir() -> str | None:
    """$XDG_CACHE_HOME/shmcli (an absolute path, as the XDG spec requires),
    else ~/.cache/shmcli; None without a home."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.environ.get("HOME")
        if not home:
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "shmcli")


class TableStore:
    """Command tables on disk, one JSON file per server identity.  Nothing
    here is an error the user sees: a directory that cannot be written, or
    a file that does not parse, is a table not kept or not found."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory

    def _path(self, server: str) -> str | None:
        if self.directory is None:
            return None
        return os.path.join(self.directory, f"{_FILE_PREFIX}{_safe(server)}.json")

    def load(self, server: str) -> CommandTable | None:
        path = self._path(server)
        return self._read(path) if path is not None else None

    def newest(self) -> CommandTable | None:
        """The table used last (files are touched when used)."""
        if self.directory is None:
            return None
        try:
            names = [n for n in os.listdir(self.directory)
                     if n.startswith(_FILE_PREFIX) and n.endswith(".json")]
            paths = sorted((os.path.join(self.directory, n) for n in names),
                           key=os.path.getmtime, reverse=True)
        except OSError:
            return None
        for path in paths:
            table = self._read(path)
            if table is not None:
                return table
        return None

    def save(self, table: CommandTable) -> None:
        import json  # here, not at the top: json imports re (start-up time)
        import tempfile

        path = self._path(table.server) if table.server else None
        if path is None or self.directory is None:
            return
        data = json.dumps({"format": CACHE_FORMAT, "server": table.server,
                           "docs": [doc.fields() for doc in table.docs]})
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".commands-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(data)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            pass  # a cache that cannot be written is no error: the next run asks again

    @staticmethod
    def _read(path: str) -> CommandTable | None:
        import json

        try:
            with open(path, encoding="utf-8") as file:
                stored = json.load(file)
            os.utime(path)  # the newest file is the table used last
        except (OSError, ValueError):
            return None
        try:
            if stored["format"] != CACHE_FORMAT or not isinstance(stored["server"], str):
                return None
            docs = []
            for words, params, summary, since, group, complexity in stored["docs"]:
                texts = (params, summary, group, complexity)
                if not (isinstance(words, list) and words
                        and all(isinstance(w, str) for w in words)
                        and all(isinstance(t, str) for t in texts)
                        and (since is None or isinstance(since, str))):
                    return None
                docs.append(CommandDoc(tuple(words), params, summary, since, group,
                                       complexity))
        except (KeyError, TypeError, ValueError):
            return None
        return CommandTable(docs, stored["server"])


_DEFAULT_DIR = object()


class CommandTableCache:
    """The table a session uses.  It is looked up once per connection (the
    loop asks again with retry() after a typed AUTH or HELLO, which may
    have turned a NOAUTH into a yes), never inside MULTI, where INFO and
    COMMAND DOCS would be queued; until a server answers, the table used
    last is read from disk."""

    def __init__(self, directory: str | None | object = _DEFAULT_DIR) -> None:
        self.table: CommandTable | None = None
        self.store = TableStore(cache_dir() if directory is _DEFAULT_DIR
                                else directory)  # type: ignore[arg-type]
        self._asked: Connection | None = None

    def get(self, conn: Connection | None) -> CommandTable:
        if conn is not None and conn is not self._asked and conn.connected \
                and not conn.in_transaction:
            self._asked = conn
            try:
                table = self._from_server(conn)
            except (ConnectionError, OSError, ValueError):
                table = None  # the caller's next command reports a lost connection
            if table is not None:
                self.table = table
        if self.table is None:
            self.table = self.store.newest() or CommandTable()
        return self.table

    def peek(self) -> CommandTable:
        """The table as it is, without asking anyone (for other threads)."""
        return self.table or CommandTable()

    def retry(self) -> None:
        """Ask the connection again at the next get()."""
        self._asked = None

    def _from_server(self, conn: Connection) -> CommandTable | None:
        info = conn.execute("INFO", "server", "modules")
        if isinstance(info, Error) and info.code == "NOAUTH":
            return None  # COMMAND DOCS would be refused too
        server = server_identity(info)
        if server is not None:
            if self.table is not None and self.table.server == server:
                return self.table
            table = self.store.load(server)
            if table is not None:
                return table
        reply = conn.execute("COMMAND", "DOCS")
        if not isinstance(reply, Array | Map):
            return None
        table = parse_command_docs(reply, server)
        if server is not None and table.docs:
            self.store.save(table)
        return table
