"""Splitting and quoting multi-part T-SQL names (``[msdb].[dbo].[sp_start_job]``, ``msdb..sysjobs``)."""

from __future__ import annotations

from .errors import syntax_error

_CLOSERS = {"[": "]", '"': '"'}


def split_name(name: str) -> list[str]:
    """Split a dotted name into its parts, unquoting ``[x]`` and ``"x"``; empty parts stay ``''``."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    text = name.strip()
    while i < len(text):
        ch = text[i]
        if ch in _CLOSERS:
            close = _CLOSERS[ch]
            end = i + 1
            while True:
                end = text.find(close, end)
                if end < 0:
                    raise syntax_error(text[i:])
                if text[end + 1 : end + 2] == close:  # doubled closer is an escaped one
                    end += 2
                    continue
                break
            current.append(text[i + 1 : end].replace(close + close, close))
            i = end + 1
        elif ch == ".":
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    parts.append("".join(current).strip())
    return parts


def quote_ident(name: str) -> str:
    """Quote an identifier for SQLite."""
    return '"' + name.replace('"', '""') + '"'
