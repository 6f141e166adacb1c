"""--latency-dist's picture: one character per latency bucket, its background
colour saying what share of the interval's samples fell there.

redis-cli's buckets, characters, legend and palettes are kept (colour index
= ceil(share * (palette size - 1)); 19 colours, or 13 greys with --mono).
Its finest bucket, `.`, holds everything up to 10 µs, which is where a
shared-memory round trip lives, so three buckets come first:

    _  up to 1 µs      ,  up to 2 µs      :  up to 5 µs

and the legend gains one line for them.  The drawing is done with rich, in
xterm-256 colours, forced on whether or not stdout is a terminal (redis-cli
prints the escapes unconditionally too; NO_COLOR, honoured by rich, turns
them off).  The bytes differ from redis-cli's (rich writes one full SGR
sequence per character), the picture does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TextIO

from rich.color import Color, ColorType
from rich.console import Console
from rich.style import Style
from rich.text import Text

from .closed_stdout import guard_console

__all__ = ["BUCKETS", "COLOUR_PALETTE", "MONO_PALETTE", "SpectrumPainter", "bucket_index"]

# (upper bound in µs, character); 0 ends the list and holds everything above.
BUCKETS: tuple[tuple[int, str], ...] = (
    (1, "_"), (2, ","), (5, ":"),
    (10, "."), (125, "-"), (250, "*"), (500, "#"),
    *((ms * 1000, str(ms)) for ms in range(1, 10)),
    (10_000, "A"), (20_000, "B"), (30_000, "C"), (40_000, "D"), (50_000, "E"),
    (100_000, "F"), (200_000, "G"), (300_000, "H"), (400_000, "I"), (500_000, "J"),
    (1_000_000, "K"), (2_000_000, "L"), (4_000_000, "M"), (8_000_000, "N"),
    (16_000_000, "O"), (30_000_000, "P"), (60_000_000, "Q"),
    (0, "?"),
)

COLOUR_PALETTE = (0, 233, 234, 235, 237, 239, 241, 243, 245, 247, 144, 143, 142, 184, 226,
                  214, 208, 202, 196)
MONO_PALETTE = (0, 233, 234, 235, 237, 239, 241, 243, 245, 247, 249, 251, 253)

RULE = "-" * 45
LEGEND = (
    "_ , :            .001 .002 .005 milliseconds",
    ". - * #          .01 .125 .25 .5 milliseconds",
    "1,2,3,...,9      from 1 to 9     milliseconds",
    "A,B,C,D,E        10,20,30,40,50  milliseconds",
    "F,G,H,I,J        .1,.2,.3,.4,.5       seconds",
    "K,L,M,N,O,P,Q,?  1,2,4,8,16,30,60,>60 seconds",
)


def bucket_index(ns: int) -> int:
    for index, (bound_us, _) in enumerate(BUCKETS):
        if bound_us == 0 or ns <= bound_us * 1000:
            return index
    return len(BUCKETS) - 1


def _xterm(number: int) -> Color:
    # Always the 256-colour form (48;5;N), as redis-cli writes it, even for 0-15.
    return Color(f"color({number})", ColorType.EIGHT_BIT, number=number)


class SpectrumPainter:
    def __init__(self, mono: bool, file: TextIO) -> None:
        self.palette = MONO_PALETTE if mono else COLOUR_PALETTE
        self.console = guard_console(Console(file=file, force_terminal=True,
                                             color_system="256", highlight=False,
                                             markup=False, emoji=False, soft_wrap=True))
        self._ink = _xterm(0)

    def legend(self) -> None:
        print_ = self.console.print
        print_(RULE)
        for line in LEGEND:
            print_(line)
        scale = Text("From 0 to 100%: ")
        for number in self.palette:
            scale.append(" ", Style(bgcolor=_xterm(number)))
        print_(scale)
        print_(RULE)

    def spectrum(self, counts: Sequence[int]) -> None:
        total = sum(counts)
        line = Text()
        top = len(self.palette) - 1
        for (_, char), count in zip(BUCKETS, counts, strict=True):
            shade = math.ceil(count / total * top) if total else 0
            line.append(char, Style(color=self._ink, bgcolor=_xterm(self.palette[shade])))
        self.console.print(line)
