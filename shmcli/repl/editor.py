"""The line editor of the interactive shell, on prompt_toolkit.

- completion on Tab: command names (upper-cased, as redis-cli), subcommands,
  the keywords of the command's syntax, key names that start with what was
  typed (key_scanner.py; quoted when they need it), and help topics
  (@groups) after "help"; it runs in a thread (ThreadedCompleter), so a
  scan never blocks typing;
- the greyed hint after the cursor (hints.py), off with ":set nohints";
- highlighting: the command, keys (where the syntax says "key"), keywords,
  quoted strings (spaces included, as redis-cli splits the line) and numbers;
- a right prompt with the transport and the last command's round trip (a
  bottom toolbar needs cursor-position reports, which not every terminal or
  test harness answers);
- an accepted line is drawn one last time as it was typed: no hint (as
  redis-cli erases it on Enter) and no right prompt (whose round trip would
  be the previous command's);
- history from redis-cli's file, with Ctrl-R search (prompt_toolkit's own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import get_app
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, ThreadedCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.layout.processors import (
    Processor,
    Transformation,
    TransformationInput,
)
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from ..command_table import CommandTable
from ..splitargs import split_args
from .hints import hint_for, keyword_tokens
from .key_scanner import KeyScanner
from .loop import CommandLoop

STYLE = Style.from_dict({
    "hint": "#808080",
    "command": "bold #5fafff",
    "unknown": "#d75f5f",
    "keyword": "#d7af5f",
    "key": "#5fd7d7",
    "string": "#87af87",
    "number": "#af87d7",
    "rprompt": "#808080",
})


# answered by the shell itself (loop.py), highlighted as commands
CLIENT_COMMANDS = ("HELP", "?", "QUIT", "EXIT", "CONNECT", "CLEAR", "RESTART")


def word_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of each argument of a line, as redis-cli splits it: a
    quoted argument is one, spaces included; an unclosed quote runs to the
    end of the line."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start, quote = i, line[i] if line[i] in "\"'" else ""
        i += 1
        while quote and i < n:
            char = line[i]
            if char == "\\" and i + 1 < n and (quote == '"' or line[i + 1] == "'"):
                i += 2
                continue
            i += 1
            if char == quote:
                break
        while i < n and not line[i].isspace():
            i += 1
        spans.append((start, i))
    return spans


def typed_key(word: str) -> bytes:
    """The key a word being typed stands for: a quoted word unquoted as
    redis-cli would (its closing quote may be missing yet)."""
    raw = word.encode(errors="surrogateescape")
    if word[:1] in ("'", '"'):
        for attempt in (raw, raw + word[:1].encode()):
            argv = split_args(attempt)
            if argv is not None and len(argv) == 1:
                return argv[0]
    return raw


_REPR_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r",
                 ord("\t"): "\\t", 7: "\\a", 8: "\\b"}


def key_completion(key: bytes, current: str) -> Completion:
    """The completion that inserts a key: as it is, or quoted with
    redis-cli's escapes when it has spaces, quotes or unprintable bytes."""
    try:
        text = key.decode()
    except UnicodeDecodeError:
        text = None
    display = key.decode(errors="replace")
    if text is None or not text or not text.isprintable() \
            or any(char in text for char in " \"'\\"):
        text = '"' + "".join(_REPR_ESCAPES.get(byte) or (chr(byte) if 32 <= byte < 127
                                                         else f"\\x{byte:02x}")
                             for byte in key) + '"'
    return Completion(text, start_position=-len(current), display=display)


class RedisCompleter(Completer):
    """Runs in a thread (ThreadedCompleter): it reads the command table as
    it is (no server round trip) and waits for the key scan it needs."""

    def __init__(self, table: Callable[[], CommandTable], keys: KeyScanner | None) -> None:
        self.table = table
        self.keys = keys

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        spans = word_spans(text)
        words = [text[a:b] for a, b in spans]
        # the word under the cursor ("" after a space; an open quote goes on)
        current = words[-1] if spans and spans[-1][1] == len(text) else ""
        done = words if not current else words[:-1]
        table = self.table()
        for word in self._candidates(table, done, current):
            yield Completion(word, start_position=-len(current))
        if self.keys is not None and current and done \
                and done[0].lower() not in ("help", "?"):
            prefix = typed_key(current)
            keys = self.keys.keys(prefix)
            if prefix in keys:  # the exact key first
                keys.remove(prefix)
                keys.insert(0, prefix)
            for key in keys:
                yield key_completion(key, current)

    def _candidates(self, table: CommandTable, done: list[str], current: str) -> list[str]:
        prefix = current.upper()
        if not done:
            return [n for n in table.command_names() if n.startswith(prefix)]
        if done[0].lower() in ("help", "?"):
            topics = [*table.command_names(), *(f"@{g}" for g in table.groups)]
            return [t for t in topics if t.upper().startswith(prefix)]
        found: list[str] = []
        if len(done) == 1:
            found = [doc.words[1] for doc in table.subcommands(done[0])
                     if doc.words[1].startswith(prefix)]
        doc = table.longest_match(done)
        if doc is not None:
            found += [k for k in keyword_tokens(doc.params) if k.startswith(prefix)]
        return found


class RedisLexer(Lexer):
    def __init__(self, table: Callable[[], CommandTable]) -> None:
        self.table = table

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        if not document.text:  # the empty line of a new prompt: no table needed
            return lambda number: []
        table = self.table()
        # no table (no server seen yet): no command is marked unknown
        names = {*table.command_names(), *CLIENT_COMMANDS} if table.docs else set()

        def line(number: int) -> StyleAndTextTuples:
            text = document.lines[number]
            spans = word_spans(text)
            doc = table.longest_match([text[a:b] for a, b in spans])
            # the syntax words that line up with the typed arguments: "key"...
            syntax = doc.params.replace("[", "").replace("]", "").split() if doc else []
            skip = len(doc.words) if doc else 1
            out: StyleAndTextTuples = []
            end = 0
            for index, (a, b) in enumerate(spans):
                if a > end:
                    out.append(("", text[end:a]))
                role = syntax[index - skip] if 0 <= index - skip < len(syntax) else ""
                out.append((self._style(text[a:b], index, names, role), text[a:b]))
                end = b
            if end < len(text):
                out.append(("", text[end:]))
            return out
        return line

    @staticmethod
    def _style(word: str, index: int, names: set[str], role: str) -> str:
        if not word:
            return ""
        if index == 0:
            return "class:command" if not names or word.upper() in names else "class:unknown"
        if word[0] in "\"'":
            return "class:string"
        if role == "key":
            return "class:key"
        if word.lstrip("-").replace(".", "", 1).isdigit():
            return "class:number"
        if word.isupper():
            return "class:keyword"
        return ""


class HintProcessor(Processor):
    """Appends the hint after the text when the cursor is at its end."""

    def __init__(self, loop: CommandLoop, table: Callable[[], CommandTable]) -> None:
        self.loop = loop
        self.table = table

    def apply_transformation(self, ti: TransformationInput) -> Transformation:
        document = ti.document
        if not self.loop.hints or get_app().is_done or not document.text \
                or ti.lineno != document.line_count - 1 or not document.is_cursor_at_the_end:
            return Transformation(ti.fragments)
        hint = hint_for(self.table(), document.text)
        if not hint:
            return Transformation(ti.fragments)
        return Transformation([*ti.fragments, ("class:hint", hint)])


def make_session(loop: CommandLoop, history_entries: list[str],
                 keys: KeyScanner | None) -> PromptSession[str]:
    def table() -> CommandTable:
        return loop.docs.get(loop.conn if loop.conn and loop.conn.connected else None)

    history = InMemoryHistory()
    for entry in history_entries:
        history.append_string(entry)

    def status() -> str:
        conn = loop.conn
        if get_app().is_done:  # the accepted line: its command has not run yet
            return ""
        if conn is None or not conn.connected:
            return " not connected "
        rtt = "" if loop.last_rtt_us is None else f" · last {loop.last_rtt_us:,.0f} µs"
        return f" {conn.last_transport if loop.last_rtt_us else conn.transport}{rtt} "

    session: PromptSession[str] = PromptSession(
        history=history, completer=ThreadedCompleter(RedisCompleter(loop.docs.peek, keys)),
        lexer=RedisLexer(table),
        complete_while_typing=False, input_processors=[HintProcessor(loop, table)],
        rprompt=status, style=STYLE, enable_history_search=False)

    def read_command_docs(_: object) -> None:
        table()  # once read, the table is kept: then this costs nothing

    # COMMAND DOCS (tens of ms to fetch and parse) is read right after the
    # first prompt is drawn, not before it: keys typed meanwhile wait for it.
    session.app.after_render += read_command_docs
    return session
