"""Plain-text and HTML renderings of ``(label, value)`` rows, for result reprs."""

from __future__ import annotations

import html

__all__ = ["html_table", "text_block"]


def text_block(title: str, rows: list[tuple[str, str]]) -> str:
    """``Title(\\n  label : value\\n  ...\\n)`` with the labels aligned."""
    width = max(len(k) for k, _ in rows)
    return f"{title}(\n" + "\n".join(f"  {k:<{width}} : {v}" for k, v in rows) + "\n)"


def html_table(caption: str, rows: list[tuple[str, str]]) -> str:
    """A two-column HTML table for notebooks (``_repr_html_``)."""
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"
