"""The greyed argument syntax shown after a command, as redis-cli 7.0 shows it.

A hint appears once the typed words match a whole command (or command and
subcommand) name; each argument already typed removes one word of the
syntax, up to the first optional part ("["), and a leading space is added
when the line does not end in one.  "multi" gets a hint of one space.
"""

from __future__ import annotations

from ..command_table import CommandTable
from ..splitargs import split_args


def hint_for(table: CommandTable, line: str) -> str | None:
    argv = split_args(line.encode(errors="surrogateescape"))
    if not argv:
        return None
    doc = table.longest_match(argv)
    if doc is None:
        return None
    hint = doc.params
    to_remove = len(argv) - len(doc.words)
    while to_remove > 0 and hint:
        if hint[0] == "[":
            break
        if hint[0] == " ":
            to_remove -= 1
        hint = hint[1:]
    return hint if line[-1:].isspace() else " " + hint


def keyword_tokens(params: str) -> list[str]:
    """The literal keywords of an argument syntax (NX, XX, EX...)."""
    words = params.replace("[", " ").replace("]", " ").replace("|", " ").split()
    return sorted({w for w in words
                   if w.isupper() and w.replace("_", "").replace("-", "").isalnum()})
