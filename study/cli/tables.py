"""The command line's tables: compact, and fitting the terminal (80 columns where output
goes to a file or pipe) by wrapping between words, never within one."""

from __future__ import annotations

from collections.abc import Sequence

GAP = 2  # spaces between columns


def word_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, left: int = 1):
    """A rich table of `rows` (texts) under `headers`, at most `width` wide where its
    longest words allow: two spaces between columns, a rule under the headers, the first
    `left` columns flush left and the rest right.

    Widths are set here, not by rich (whose shrinking cuts words with an ellipsis): each
    column gets the length of the longest word in it, then the space left goes, column by
    column from the narrowest need, to those whose longest line needs more."""
    from rich import box
    from rich.table import Table

    columns = [[header, *(row[k] for row in rows)] for k, header in enumerate(headers)]
    least = [max(len(w) for text in column for w in text.split() or [""]) for column in columns]
    most = [max(len(text) for text in column) for column in columns]
    widths = list(least)
    spare = width - sum(least) - GAP * (len(headers) - 1)
    for k in sorted(range(len(headers)), key=lambda k: most[k] - least[k]):
        grow = min(max(spare, 0), most[k] - least[k])
        widths[k] += grow
        spare -= grow
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0, 0, GAP - 1),  # with the box's blank divider, GAP spaces
    )
    for k, header in enumerate(headers):
        table.add_column(header, justify="left" if k < left else "right", width=widths[k])
    for row in rows:
        table.add_row(*row)
    return table
