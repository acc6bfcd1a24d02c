"""Plain-text and HTML renderings of result tables, for reprs.

Every table a notebook shows is bounded: a run with thousands of chains or
variables renders a few rows and says how many more there are, so that a
repr never floods the page.
"""

from __future__ import annotations

import html

__all__ = ["MAX_ROWS", "bounded", "html_columns", "html_table", "text_block", "text_columns"]

#: Rows shown before "... and N more" in any repr table.
MAX_ROWS = 10


def text_block(title: str, rows: list[tuple[str, str]]) -> str:
    """``Title(\\n  label : value\\n  ...\\n)`` with the labels aligned."""
    width = max(len(k) for k, _ in rows)
    return f"{title}(\n" + "\n".join(f"  {k:<{width}} : {v}" for k, v in rows) + "\n)"


def html_table(caption: str, rows: list[tuple[str, str]]) -> str:
    """A two-column HTML table for notebooks (``_repr_html_``)."""
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"


def bounded(rows: list, max_rows: int = MAX_ROWS, what: str = "rows") -> tuple[list, str | None]:
    """The first ``max_rows`` rows, and a note such as ``"… and 1,012 more rows"``
    (or ``None``)."""
    if len(rows) <= max_rows:
        return list(rows), None
    return list(rows[:max_rows]), f"… and {len(rows) - max_rows:,} more {what}"


def html_columns(caption: str, header: list[str], rows: list[list[str]],
                 max_rows: int = MAX_ROWS, what: str = "rows") -> str:
    """An HTML table with a header row, at most ``max_rows`` body rows and a note for the rest."""
    shown, note = bounded(rows, max_rows, what)
    head = "".join(f"<th style='text-align:right'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{html.escape(c)}</td>"
                                    for c in row) + "</tr>" for row in shown)
    if note:
        body += (f"<tr><td colspan='{len(header)}' style='text-align:left'><i>"
                 f"{html.escape(note)}</i></td></tr>")
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def text_columns(header: list[str], rows: list[list[str]], max_rows: int = MAX_ROWS,
                 what: str = "rows") -> str:
    """Right-aligned plain-text columns, bounded like :func:`html_columns`."""
    shown, note = bounded(rows, max_rows, what)
    widths = [max(len(h), *(len(r[i]) for r in shown)) if shown else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in shown]
    if note:
        lines.append(note)
    return "\n".join(lines)
