"""`-c`: the MOVED and ASK redirections of a Redis Cluster, read as redis-cli reads them.

redis-cli 7.0 (cliReadReply) takes an error reply that starts with "MOVED "
or "ASK " as a redirection: the word after the first space is the slot
(atoi), and what follows the second space is host:port, split at the last
colon (so an IPv6 address keeps its colons).  It then connects to that node
(the new address is the one the prompt and every later reconnection use),
sends ASKING first for ASK, and issues the command again with its whole
repeat count.  In the REPL (the shell and the stdin mode) it first prints
"-> Redirected to slot [N] located at host:port"; the one-shot mode and
--eval follow silently.  The redirection itself is never printed.

This module only reads the reply; command_mode.py follows it with a
connection its caller opens (cli.py, repl/loop.py).
"""

from __future__ import annotations

from .resp import Error, Reply
from .uri import int_atoi


class Redirect:
    """Where a MOVED or ASK reply sends the command."""

    __slots__ = ("slot", "host", "port", "ask")

    def __init__(self, slot: int, host: str, port: int, ask: bool) -> None:
        self.slot, self.host, self.port = slot, host, port
        self.ask = ask  # ASK: send ASKING before the command, on the new node

    @property
    def message(self) -> bytes:
        """redis-cli's line in the REPL (printf "%s:%d" of the address)."""
        return (b"-> Redirected to slot [%d] located at %s:%d\n"
                % (self.slot, self.host.encode(errors="surrogateescape"), self.port))


class RedirectFailed(Exception):
    """The node a redirection names could not be used (already reported)."""


def parse_redirect(reply: Reply) -> Redirect | None:
    """The redirection an error reply asks for, or None.  A line that
    redis-cli would read past its end (no second space, no colon) is left
    as the error it is."""
    if not isinstance(reply, Error):
        return None
    text = reply.text
    if not text.startswith((b"MOVED ", b"ASK ")):
        return None
    first = text.index(b" ")
    second = text.find(b" ", first + 1)
    if second < 0:
        return None
    address = text[second + 1:]
    colon = address.rfind(b":")
    if colon < 0:
        return None
    return Redirect(slot=int_atoi(text[first + 1:second].decode(errors="replace")),
                    host=address[:colon].decode(errors="surrogateescape"),
                    port=int_atoi(address[colon + 1:].decode(errors="replace")),
                    ask=text.startswith(b"ASK "))
