"""The backend's one error type. Everything a user can get wrong raises IrmogenError.

The message is one line naming the file, field or value at fault; `hint` says what to do about it;
`code` is a short machine-readable word that the protocol's `error` event carries.
"""
from __future__ import annotations


class IrmogenError(Exception):
    def __init__(self, message: str, *, code: str = "bad_input", hint: str | None = None):
        super().__init__(message)
        self.message = " ".join(str(message).split())  # always one line
        self.code = code
        self.hint = hint

    def __str__(self) -> str:
        return self.message


def at(path, line: int | None, what: str) -> str:
    """Format 'FILE:LINE: what' (or 'FILE: what') for parse errors."""
    return f"{path}:{line}: {what}" if line is not None else f"{path}: {what}"
