"""Text from outside (Jira's answers, labels, error texts, paths) made safe for a terminal.

A terminal obeys the control characters in what it prints: `ESC ] 0;...BEL` retitles the
window, `ESC [2J` clears the screen, an OSC 8 sequence hides a link behind harmless text, a
bare `\\r` lets the rest of a line overwrite what came before it, and a bidi override makes a
line read differently from what it holds. So every human rendering (tables, `jtm show`,
`jtm status`, `jtm check`, `jtm watch`, error messages, console logs) passes such text
through `visible`, which writes each of these characters as a visible escape (`\\x1b`,
`\\r`, `\\u202e`) instead: the text can still be read, and can no longer act. The program's
own styling is added after, so it is never escaped. JSON output stays exact: JSON escapes
control characters itself, and a reader of JSON expects the data as it is.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f"  # C0 (ESC, BEL, CR, LF, TAB, NUL, ...) and DEL
    "\x80-\x9f"  # C1: a single-character CSI (\x9b), OSC (\x9d), DCS (\x90), ST (\x9c)
    "\u061c\u200e\u200f"  # bidi marks
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2066-\u2069"  # bidi isolates
    "\u2028\u2029"  # line and paragraph separators
    "]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every control character, bidi control and line separator written as an
    escape (`\\x1b`, `\\n`, `\\u202e`); everything else, backslashes included, is unchanged."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)


def has_unsafe(text: str) -> bool:
    """True when `visible` would change `text`: it holds a character a terminal acts on."""
    return _UNSAFE.search(text) is not None
