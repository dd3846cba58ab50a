# SPDX-License-Identifier: Apache-2.0
"""A small client of agentsyncd's HTTP API (ARCHITECTURE.md, "HTTP API").

Every call says whether the request may have reached the daemon: a refused
TCP connection means it did not (NotSent); a connection that broke or timed
out after the request was sent means it may have been applied (Unknown).
"""

import http.client
import json
import socket


class NotSent(Exception):
    """The daemon did not get the request (connection refused or unreachable)."""


class Unknown(Exception):
    """The request went out but no answer came: it may or may not have been applied."""


class Api:
    def __init__(self, host, port, timeout=2.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._conn = None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self):
        if self._conn is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                c.connect()
            except (ConnectionRefusedError, socket.timeout, OSError) as e:
                c.close()
                raise NotSent(str(e))
            self._conn = c
        return self._conn

    def request(self, method, path, body=None, ctype="application/json"):
        """Returns (status, body bytes); raises NotSent or Unknown."""
        c = self._connect()
        headers = {"Content-Type": ctype} if body is not None else {}
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            # Whatever broke, the request may have been read by the daemon.
            self.close()
            raise Unknown("%s %s: %s" % (method, path, e or type(e).__name__))
        if r.will_close:
            self.close()
        return r.status, data

    def json(self, method, path, body=None):
        status, data = self.request(method, path, body)
        return status, json.loads(data) if data else None

    def state(self):
        status, doc = self.json("GET", "/v1/state")
        if status != 200:
            raise Unknown("GET /v1/state: HTTP %d" % status)
        return doc

    def listing(self):
        """Every live pattern, as parsed objects (NDJSON listing)."""
        status, data = self.request("GET", "/v1/patterns?format=ndjson")
        if status != 200:
            raise Unknown("GET /v1/patterns: HTTP %d: %s" % (status, data[:200]))
        return [json.loads(line) for line in data.splitlines() if line.strip()]
