"""The line editor of the interactive shell, on prompt_toolkit.

- completion on Tab: command names (upper-cased, as redis-cli), subcommands,
  the keywords of the command's syntax, key names from the background scan,
  and help topics (@groups) after "help";
- the greyed hint after the cursor (hints.py), off with ":set nohints";
- highlighting: the command, keys (where the syntax says "key"), keywords,
  quoted strings and numbers;
- a right prompt with the transport and the last command's round trip (a
  bottom toolbar needs cursor-position reports, which not every terminal or
  test harness answers);
- history from redis-cli's file, with Ctrl-R search (prompt_toolkit's own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
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


class RedisCompleter(Completer):
    def __init__(self, table: Callable[[], CommandTable], keys: KeyScanner | None) -> None:
        self.table = table
        self.keys = keys

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        current = "" if not words or text[-1:].isspace() else words[-1]
        done = words if not current else words[:-1]
        table = self.table()
        for word in self._candidates(table, done, current):
            yield Completion(word, start_position=-len(current))

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
        if self.keys is not None and current:
            found += [k for k in self.keys.keys() if k.startswith(current)][:200]
        return found


class RedisLexer(Lexer):
    def __init__(self, table: Callable[[], CommandTable]) -> None:
        self.table = table

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        if not document.text:  # the empty line of a new prompt: no table needed
            return lambda number: []
        table = self.table()
        names = set(table.command_names())

        def line(number: int) -> StyleAndTextTuples:
            words = document.lines[number].split(" ")
            doc = table.longest_match([w for w in words if w])
            # the syntax words that line up with the typed arguments: "key"...
            syntax = doc.params.replace("[", "").replace("]", "").split() if doc else []
            skip = len(doc.words) if doc else 1
            out: StyleAndTextTuples = []
            typed = 0
            for index, word in enumerate(words):
                if index:
                    out.append(("", " "))
                role = syntax[typed - skip] if 0 <= typed - skip < len(syntax) else ""
                out.append((self._style(word, typed, names, role), word))
                typed += 1 if word else 0
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
        if not self.loop.hints or not document.text or ti.lineno != document.line_count - 1 \
                or not document.is_cursor_at_the_end:
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
        if conn is None or not conn.connected:
            return " not connected "
        rtt = "" if loop.last_rtt_us is None else f" · last {loop.last_rtt_us:,.0f} µs"
        return f" {conn.last_transport if loop.last_rtt_us else conn.transport}{rtt} "

    session: PromptSession[str] = PromptSession(
        history=history, completer=RedisCompleter(table, keys), lexer=RedisLexer(table),
        complete_while_typing=False, input_processors=[HintProcessor(loop, table)],
        rprompt=status, style=STYLE, enable_history_search=False)

    def read_command_docs(_: object) -> None:
        table()  # once read, the table is kept: then this costs nothing

    # COMMAND DOCS (tens of ms to fetch and parse) is read right after the
    # first prompt is drawn, not before it: keys typed meanwhile wait for it.
    session.app.after_render += read_command_docs
    return session
