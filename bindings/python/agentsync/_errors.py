# SPDX-License-Identifier: Apache-2.0
"""The exceptions agentsync raises.

Every one is an :class:`Error` carrying the library's own message, the name
of its error code (``"AGS_ERR_PATTERN"``), and where it applies the JSON path
of the value at fault (``field``), the byte offset of malformed JSON
(``offset``) and the position in a batch (``index``).
"""

from __future__ import annotations

import builtins
from typing import Optional


class Error(Exception):
    """Base class of every agentsync error.

    Attributes:
        message: the library's sentence ("must be an integer from 1 to 10, got 11").
        code: the library's error name ("AGS_ERR_PATTERN").
        errno: the library's error number (negative, e.g. -4).
        field: the JSON path of the value at fault ("metadata.priority",
            "[3].id", "quic.peers[1].port"), or None.
        offset: for malformed JSON, the byte offset, or None.
        index: for a batch, the position of the pattern at fault, or None.
        file: for a configuration file, its path, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "AGS_ERR_INTERNAL",
        errno: int = -22,
        field: Optional[str] = None,
        offset: Optional[int] = None,
        index: Optional[int] = None,
        file: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.errno = errno
        self.field = field
        self.offset = offset
        self.index = index
        self.file = file

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        text = ": ".join(parts)
        if self.offset is not None:
            text += f" (at byte {self.offset})"
        return text


class ArgumentError(Error, ValueError):
    """An argument is invalid (AGS_ERR_INVALID)."""


class PatternError(Error, ValueError):
    """A pattern was refused: not JSON, not a valid pattern, too large, or a
    checksum that does not match. Nothing of the call was applied."""


class ConfigError(Error, ValueError):
    """A configuration was refused; ``field`` is the JSON path
    ("quic.peers[1].port"), as agentsyncd reports it."""


class AuthError(Error):
    """Authentication or authorisation was refused (AGS_ERR_AUTH)."""


class TLSError(Error):
    """TLS failed: a handshake, a certificate or a key (AGS_ERR_TLS)."""


class StoreError(Error):
    """The SQLite store failed (AGS_ERR_STORE); the message has SQLite's."""


class NotFoundError(Error, LookupError):
    """No such record, peer or file (AGS_ERR_NOT_FOUND)."""


class ExistsError(Error, ValueError):
    """Already exists, e.g. a peer added twice (AGS_ERR_EXISTS)."""


class StateError(Error, RuntimeError):
    """The call does not fit the object's state, e.g. a node not started."""


class TimeoutError(Error, builtins.TimeoutError):
    """An operation did not complete in time (AGS_ERR_TIMEOUT)."""


class ClosedError(Error, ConnectionError):
    """The connection is closed (AGS_ERR_CLOSED): connect again; nothing is lost."""


class ProtocolError(Error):
    """The QUIC layer failed or the peer broke the protocol."""


class ConfigWarning(UserWarning):
    """A configuration key the parser does not know (it is ignored)."""


_BY_NAME = {
    "AGS_ERR_INVALID": ArgumentError,
    "AGS_ERR_STORE": StoreError,
    "AGS_ERR_NOT_FOUND": NotFoundError,
    "AGS_ERR_TLS": TLSError,
    "AGS_ERR_QUIC": ProtocolError,
    "AGS_ERR_PROTO": ProtocolError,
    "AGS_ERR_CLOSED": ClosedError,
    "AGS_ERR_TIMEOUT": TimeoutError,
    "AGS_ERR_AUTH": AuthError,
    "AGS_ERR_CONFIG": ConfigError,
    "AGS_ERR_STATE": StateError,
    "AGS_ERR_EXISTS": ExistsError,
}

# The codes that mean "this input is not a pattern" when a pattern was given
# (elsewhere they are plain Errors).
_PATTERN_CODES = ("AGS_ERR_JSON", "AGS_ERR_PATTERN", "AGS_ERR_TOO_LARGE", "AGS_ERR_CHECKSUM")

# Contexts the extension passes (bindings/python/src/pyags.h, enum pyags_ctx).
_CTX_PATTERN = 1
_CTX_CONFIG = 2


def _from_library(
    errno: int,
    message: str,
    field: Optional[str],
    offset: Optional[int],
    index: Optional[int],
    ctx: int,
) -> Error:
    """Makes the exception for a library error (called by the extension)."""
    from . import _agentsync

    code = _agentsync.ERROR_NAMES.get(errno, "AGS_ERR_INTERNAL")
    if ctx == _CTX_CONFIG:
        cls: type[Error] = ConfigError
    elif ctx == _CTX_PATTERN and code in _PATTERN_CODES:
        cls = PatternError
    else:
        cls = _BY_NAME.get(code, Error)
    return cls(message, code=code, errno=errno, field=field, offset=offset, index=index)
