# SPDX-License-Identifier: Apache-2.0
"""agentsync: real-time, loss-free sync of patterns between AI agents, over QUIC.

The library runs inside this process (a C extension embeds it):

- :class:`Node` is seed 000's QUICServer: a durable store kept in sync with
  peers over QUIC + TLS 1.3. :mod:`agentsync.aio` has the asyncio version.
- :class:`FederationHub` is seed 004's agent of a federation hub.
- Every error is an :class:`Error`; bad input names the field at fault.
- :func:`init_certs` makes a CA and node certificates, as
  ``agentsync certs init`` does.

Patterns, events and state are dicts in the seed's JSON shape; see
:mod:`agentsync.types`.
"""

from __future__ import annotations

import os
from typing import Iterable, Union

from ._errors import (
    ArgumentError,
    AuthError,
    ClosedError,
    ConfigError,
    ConfigWarning,
    Error,
    ExistsError,
    NotFoundError,
    PatternError,
    ProtocolError,
    StateError,
    StoreError,
    TimeoutError,
    TLSError,
)
from . import _agentsync
from ._events import EventStream
from ._hub import FederationHub
from ._node import Node
from . import aio, types
from .types import Event, NodeState, Pattern

__version__ = _agentsync.VERSION

__all__ = [
    "Node",
    "FederationHub",
    "EventStream",
    "Pattern",
    "Event",
    "NodeState",
    "Error",
    "ArgumentError",
    "AuthError",
    "ClosedError",
    "ConfigError",
    "ConfigWarning",
    "ExistsError",
    "NotFoundError",
    "PatternError",
    "ProtocolError",
    "StateError",
    "StoreError",
    "TimeoutError",
    "TLSError",
    "init_certs",
    "cert_pin",
    "aio",
    "types",
]


def init_certs(
    directory: Union[str, "os.PathLike[str]"], node_ids: Iterable[str], *, p256: bool = False
) -> None:
    """Makes sure ``directory`` holds a CA (ca.pem, ca-key.pem) and, per node
    id, ``<id>.pem`` and ``<id>-key.pem`` signed by it (Ed25519 keys, or
    P-256 with ``p256``), as ``agentsync certs init`` does. An existing CA
    and valid certificates are kept."""
    _agentsync.init_certs(os.fspath(directory), list(node_ids), p256)


def cert_pin(path: Union[str, "os.PathLike[str]"]) -> str:
    """The SPKI SHA-256 pin (64 hex digits) of a PEM certificate, for ``tls.pins``."""
    return _agentsync.cert_pin(os.fspath(path))
