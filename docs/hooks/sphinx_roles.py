"""MkDocs hook: show Sphinx roles of energymc's docstrings as plain code.

The docstrings are NumPy style and name other objects Sphinx's way
(``:class:`energymc.Energy```, ``:func:`~energymc.sample```). mkdocstrings
renders Markdown, in which the role prefix would stay as literal text
(":class: energymc.Energy"). This hook drops the prefix (and Sphinx's ``~``)
from the rendered HTML, leaving the name in code font. Not done by rewriting
the names into cross-reference links: a name that the API pages do not
document (a private helper, an upstream object) would then fail the strict build.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):(?=<code>)")
_TILDE = re.compile(r"<code>~")


def on_page_content(html: str, **kwargs) -> str:
    """Strip ``:role:`` prefixes in front of inline code in a rendered page."""
    if ":" not in html:
        return html
    html = _ROLE.sub("", html)
    return _TILDE.sub("<code>", html)
