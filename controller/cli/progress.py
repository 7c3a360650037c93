"""Progress of long commands (user import, db replicate, storage sweep): one bar, drawn only for a person.

The bar is click's own, on stdout, and only when stdout is a terminal and the command was not given
``--json``: scripts and pipes see the command's output and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

Step = Callable[[int, int, str | None], None]


@contextmanager
def progress(label: str, *, quiet: bool = False) -> Iterator[Step]:
    """A ``step(done, total, item)`` callback that moves the bar (``item`` is shown beside it, if given).

    With ``quiet`` (``--json``), or when stdout is not a terminal, the callback does nothing. The bar
    is drawn from the first step and ends with its line finished, so what the command prints next
    starts on a line of its own.
    """
    stdout = click.get_text_stream("stdout")
    if quiet or not stdout.isatty():
        yield lambda done, total, item: None
        return
    bars: list[Any] = []  # made at the first step, when the total is known

    def step(done: int, total: int, item: str | None) -> None:
        if not bars:
            bar = click.progressbar(
                length=max(total, 1), label=label, file=stdout, show_pos=True, item_show_func=lambda i: i
            )
            bar.__enter__()
            bars.append(bar)
        bar = bars[0]
        bar.update(max(0, done - bar.pos), current_item=item)

    try:
        yield step
    finally:
        if bars:
            bars[0].__exit__(None, None, None)
