"""redis-cli's history file: ~/.rediscli_history, or $REDISCLI_HISTFILE.

The same file and rules as redis-cli (linenoise), so both tools share it:
plain text, one line per entry, at most 100 entries, rewritten after every
line; a line equal to the previous one is not added again; "/dev/null" turns
the file off; commands that carry secrets (AUTH, ACL SETUSER, CONFIG SET of
a password, HELLO ... AUTH, MIGRATE ... AUTH) are never stored.
"""

from __future__ import annotations

import os

MAX_ENTRIES = 100


def dotfile_path(variable: str, name: str) -> str | None:
    """redis-cli's rule for its files: $variable, else ~/name; "/dev/null"
    means none."""
    override = os.environ.get(variable)
    if override:
        return None if override == "/dev/null" else override
    home = os.environ.get("HOME")
    return os.path.join(home, name) if home else None


def history_path() -> str | None:
    return dotfile_path("REDISCLI_HISTFILE", ".rediscli_history")


def is_sensitive(argv: list[bytes]) -> bool:
    words = [w.lower() for w in argv]
    if not words:
        return False
    name = words[0]
    if name == b"auth":
        return True
    if name == b"acl" and len(words) > 1 and words[1] == b"setuser":
        return True
    if name == b"config" and len(words) > 2 and words[1] == b"set":
        return any(w in (b"masterauth", b"masteruser", b"requirepass") for w in words[2::2])
    if name == b"hello":
        return b"auth" in words[2:]
    if name == b"migrate":
        return b"auth" in words[6:] or b"auth2" in words[6:]
    return False


class History:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.entries: list[str] = []
        if path is not None:
            try:
                with open(path, errors="surrogateescape") as file:
                    text = file.read()
            except OSError:
                text = ""
            self.entries = [line for line in text.split("\n") if line][-MAX_ENTRIES:]

    def add(self, line: bytes, argv: list[bytes] | None) -> None:
        """Record a line (argv None: it did not parse, and is kept anyway)."""
        if argv is not None and is_sensitive(argv):
            return
        entry = line.decode(errors="surrogateescape")
        if self.entries and self.entries[-1] == entry:
            return
        self.entries = [*self.entries, entry][-MAX_ENTRIES:]
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = "".join(f"{e}\n" for e in self.entries).encode(errors="surrogateescape")
        try:  # private to its owner, as linenoise makes it
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except OSError:
            pass  # as redis-cli: a history that cannot be written is not an error
