"""`help`, `help <command>` and `help @<group>`, printed as redis-cli prints them.

The entries come from the server's COMMAND DOCS (command_table.py).  redis-cli
ends these lines with CR LF and colours the name (bold), the arguments (dark
grey) and the labels (yellow); a final blank line closes every listing, and a
topic that matches nothing prints only that line.
"""

from __future__ import annotations

from .command_table import CommandDoc, CommandTable
from .usage import shmcli_version

GENERIC_HELP = """\
shmcli {version}
To get help about Redis commands type:
      "help @<group>" to get a list of commands in <group>
      "help <command>" for help on <command>
      "help <tab>" to get a list of possible help topics
      "quit" to exit

To set redis-cli preferences:
      ":set hints" enable online hints
      ":set nohints" disable online hints
Set your preferences in ~/.redisclirc
"""


def _entry(doc: CommandDoc, with_group: bool) -> str:
    out = (f"\r\n  \x1b[1m{doc.name}\x1b[0m \x1b[90m{doc.params}\x1b[0m\r\n"
           f"  \x1b[33msummary:\x1b[0m {doc.summary}\r\n")
    if doc.since is not None:
        out += f"  \x1b[33msince:\x1b[0m {doc.since}\r\n"
    if with_group:
        out += f"  \x1b[33mgroup:\x1b[0m {doc.group}\r\n"
    return out


def help_text(table: CommandTable, topic: list[str]) -> str:
    if not topic:
        return GENERIC_HELP.format(version=shmcli_version())
    out = []
    if topic[0].startswith("@"):
        group = topic[0][1:].lower()
        out = [_entry(doc, False) for doc in table.docs if doc.group.lower() == group]
    else:
        words = [word.upper() for word in topic]
        out = [_entry(doc, True) for doc in table.docs
               if len(words) <= len(doc.words) and list(doc.words[:len(words)]) == words]
    return "".join(out) + "\r\n"
