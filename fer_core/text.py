"""User text stays text: one escape for Markdown contexts, one guard for spreadsheet cells, and any error as
one line of text.

Run names, file names, class names read from a checkpoint, data paths and error messages that quote them are
chosen by whoever reaches the dashboard or writes a file; none of them is ever rendered as Markdown/HTML (a
name such as `![t](https://host/)` would make every viewer's browser fetch that address) nor run as a
spreadsheet formula (`=HYPERLINK(...)` in an exported CSV).
"""
from __future__ import annotations

import re

# every character Markdown, GitHub-flavoured Markdown or Streamlit's directives (":red[...]", ":material/x:",
# "$math$", ":emoji:") give a meaning to; each is backslash-escaped, which CommonMark allows for any ASCII
# punctuation
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&=\"'^%@;,?/])")


def md(value) -> str:
    """`value` as literal text inside Markdown (st.markdown, st.caption, st.error, labels, ...): every
    Markdown and Streamlit directive character escaped, line breaks turned into spaces."""
    s = " ".join(str(value).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", s)


def plot_text(value) -> str:
    """`value` as literal text in a Plotly label (axis ticks, legend names, hover): Plotly reads a subset of
    HTML there (<a href>, <b>, <br>), so < and > become entities it shows as themselves."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """One CSV cell that a spreadsheet opens as text, never as a formula: a text cell starting with = + - @,
    a tab or a carriage return gets a leading "'" (OWASP's CSV injection advice). Numbers (negative ones too),
    None and booleans are returned as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class csv_writer:
    """csv.writer whose every text cell passes csv_safe: file names, labels, class names and error messages
    that a user chose open in a spreadsheet as text."""

    def __init__(self, f):
        import csv

        self._w = csv.writer(f, lineterminator="\n")

    def writerow(self, row):
        self._w.writerow([csv_safe(c) for c in row])


def one_line(e: BaseException) -> str:
    """An exception as a one-line message (its whitespace collapsed, at most 300 characters) for stderr, a CSV
    error cell or the page."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg[:300]
