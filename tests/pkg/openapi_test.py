# SPDX-License-Identifier: Apache-2.0
"""docs/openapi.yaml and docs/pattern.schema.json against a running daemon.

1. The OpenAPI file is OpenAPI 3.1: every schema in it is a valid JSON Schema
   2020-12 (python3-jsonschema, Debian), every $ref resolves, operation ids are
   unique and path parameters declared.
2. Real answers of two real daemons (one with a bearer token) to every
   documented operation are validated: the status must be documented for the
   operation, the Content-Type one of its media types, the body valid against
   its schema (NDJSON line by line, Server-Sent Events' data against Event),
   required response headers present and valid. An operation of the file the
   test does not exercise fails the test.
3. pattern.schema.json and the daemon agree on real records (accepted by both)
   and on rejected ones (refused by both), case by case."""
import copy
import http.client
import json
import os
import sys
import urllib.parse
import warnings

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402

DOCS = os.path.join(A.SRC, "docs")
SPEC_PATH = os.path.join(DOCS, "openapi.yaml")
SCHEMA_PATH = os.path.join(DOCS, "pattern.schema.json")
SPEC_URI = "file://" + SPEC_PATH
SCHEMA_URI = "file://" + SCHEMA_PATH
warnings.simplefilter("ignore", DeprecationWarning)  # RefResolver, on newer jsonschema

with open(SPEC_PATH) as f:
    SPEC = yaml.safe_load(f)
with open(SCHEMA_PATH) as f:
    PATTERN_SCHEMA = json.load(f)
V = jsonschema.Draft202012Validator
COVERED = set()
TOKEN = "s3cret-token-of-the-openapi-test"


def resolver():
    return jsonschema.RefResolver(SPEC_URI, SPEC, store={SCHEMA_URI: PATTERN_SCHEMA})


def validate(schema, value, what):
    errors = sorted(V(schema, resolver=resolver()).iter_errors(value), key=lambda e: e.path)
    A.check(not errors, "%s does not match the OpenAPI file: %s" % (
        what, "; ".join("%s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
                        for e in errors[:5])))


def _walk(ref):
    node = SPEC
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj and obj["$ref"].startswith("#/"):
        obj = _walk(obj["$ref"])
    return obj


# ---- 1. the file itself ----
def check_spec():
    A.check(str(SPEC.get("openapi", "")).startswith("3.1."), "openapi is not 3.1.x")
    ids = set()
    schemas = []

    def collect(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("schema", "itemSchema", "x-sse-data") and isinstance(v, dict):
                    schemas.append((where + "/" + k, v))
                if k == "$ref" and isinstance(v, str):
                    refs.append((where, v))
                collect(v, where + "/" + str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                collect(v, "%s/%d" % (where, i))

    refs = []
    collect(SPEC, "")
    for name, s in SPEC["components"]["schemas"].items():
        schemas.append(("/components/schemas/" + name, s))
    for where, s in schemas:
        try:
            V.check_schema(s)
        except jsonschema.SchemaError as e:
            A.fail("%s is not a JSON Schema 2020-12: %s" % (where, e.message))
    r = resolver()
    for where, ref in refs:
        try:
            r.resolve(ref if not ref.startswith("#") else SPEC_URI + ref)
        except Exception as e:  # noqa: BLE001
            A.fail("%s: $ref %s does not resolve: %s" % (where, ref, e))
    for path, item in SPEC["paths"].items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method, op in item.items():
            if method == "parameters":
                continue
            A.check(op["operationId"] not in ids, "operationId %s twice" % op["operationId"])
            ids.add(op["operationId"])
            A.check(op.get("responses"), "%s %s has no responses" % (method, path))
            mine = declared | {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            want = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
            A.check(mine == want, "%s %s: path parameters %s, declared %s" %
                    (method, path, want, mine))
    V.check_schema(PATTERN_SCHEMA)


# ---- 2. answers of a running daemon ----
def call(d, method, path, body=None, ctype="application/json", token=TOKEN, headers=None):
    c = http.client.HTTPConnection(d.api.split(":")[0], int(d.api.rsplit(":", 1)[1]), timeout=60)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = ctype
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return out


def check_answer(spec_path, method, status, headers, body):
    what = "%s %s -> %d" % (method, spec_path, status)
    if method.lower() not in SPEC["paths"][spec_path]:
        # A method the path does not have: 405 and an Error (the file says so in info).
        A.check(status == 405, "%s: a method the file does not list" % what)
        validate({"$ref": "#/components/schemas/Error"}, json.loads(body), what)
        return body
    op = SPEC["paths"][spec_path][method.lower()]
    A.check(str(status) in op["responses"], "%s: status %d is not documented (%s)" %
            (what, status, body[:200]))
    resp = resolve(op["responses"][str(status)])
    for name, h in resp.get("headers", {}).items():
        v = headers.get(name.lower())
        if h.get("required"):
            A.check(v is not None, "%s: no %s header" % (what, name))
        if v is not None:
            validate(h["schema"], v, "%s header %s" % (what, name))
    content = resp.get("content")
    if content:
        ctype = headers.get("content-type", "").split(";")[0].strip()
        A.check(ctype in content, "%s: Content-Type %s, documented %s" %
                (what, ctype, list(content)))
        schema = content[ctype]["schema"]
        if ctype == "application/json":
            validate(schema, json.loads(body), what)
        elif ctype == "application/x-ndjson":
            for i, line in enumerate(body.decode().splitlines()):
                validate({"$ref": "#/components/schemas/StoredPattern"}, json.loads(line),
                         "%s line %d" % (what, i + 1))
        elif ctype.startswith("text/"):
            validate(schema, body.decode(), what)
        else:
            validate(schema, body.decode("latin-1"), what)
    COVERED.add((spec_path, method.lower()))
    return body


def expect(d, method, path, status, spec_path=None, **kw):
    st, h, body = call(d, method, path, **kw)
    A.check(st == status, "%s %s: status %d, expected %d: %s" % (method, path, st, status,
                                                                  body[:300]))
    return check_answer(spec_path or path.split("?")[0], method, st, h, body)


def sse(d, query, want, token=TOKEN, headers=None):
    """Reads `want` events of GET /v1/events?query (bounded), validating each."""
    c = http.client.HTTPConnection(d.api.split(":")[0], int(d.api.rsplit(":", 1)[1]), timeout=30)
    h = {"Authorization": "Bearer " + token} if token else {}
    h.update(headers or {})
    c.request("GET", "/v1/events" + query, headers=h)
    r = c.getresponse()
    hd = {k.lower(): v for k, v in r.getheaders()}
    check_answer("/v1/events", "GET", r.status, {"content-type": hd.get("content-type")}, b"")
    A.check(r.status == 200, "GET /v1/events: %d" % r.status)
    sch = SPEC["paths"]["/v1/events"]["get"]["responses"]["200"]["content"][
        "text/event-stream"]["x-sse-data"]
    events, cur = [], {}
    while len(events) < want:
        line = r.fp.readline()
        A.check(line, "the event stream ended after %d events" % len(events))
        line = line.decode().rstrip("\n")
        if line == "":
            if "data" in cur:
                data = json.loads(cur["data"])
                validate(sch, data, "event %s" % cur.get("event"))
                A.check(data["type"] == cur.get("event"), "event: %s, data.type %s" %
                        (cur.get("event"), data["type"]))
                events.append(data)
            cur = {}
        elif not line.startswith(":") and ":" in line:
            k, v = line.split(":", 1)
            cur[k] = v[1:] if v.startswith(" ") else v
    c.close()
    return events


def exercise(wd):
    certs = os.path.join(wd, "certs")
    A.make_certs(certs, ["a", "b"])
    a = A.Daemon(wd, "a", certs, extra={"api": {"listen": "127.0.0.1:0", "token": TOKEN},
                                         "limits": {"maxPatternBytes": 4096}}).start()
    b = A.Daemon(wd, "b", certs).start()

    expect(a, "GET", "/healthz", 200, token=None)
    expect(a, "GET", "/v1/state", 401, token=None)
    expect(a, "GET", "/v1/state", 401, token="wrong")
    expect(a, "GET", "/metrics", 401, token=None)
    expect(a, "GET", "/v1/sync", 405)
    expect(a, "PUT", "/v1/state", 405, spec_path="/v1/state")

    # Peers.
    expect(a, "GET", "/v1/peers", 200)
    expect(a, "POST", "/v1/peers", 201, body={"id": "b", "address": "127.0.0.1",
                                              "port": b.quic_port})
    expect(a, "POST", "/v1/peers", 409, body={"id": "b", "address": "127.0.0.1",
                                              "port": b.quic_port})
    expect(a, "POST", "/v1/peers", 400, body={"id": "c", "address": "127.0.0.1", "port": 70000})
    expect(a, "POST", "/v1/peers", 400, body=b"{not json")
    expect(a, "DELETE", "/v1/peers/nobody", 404, spec_path="/v1/peers/{id}")
    A.wait_for("a connected to b", lambda: json.loads(call(a, "GET", "/v1/peers")[2])
               .get("b", {}).get("connected"))

    # b's events, read while a's patterns arrive there.
    import threading
    got_b = {}
    t = threading.Thread(target=lambda: got_b.setdefault(
        "ev", sse(b, "?type=pattern:received", 3, token=None)))
    t.start()

    # Patterns in.
    good = [A.pattern(i, "o") for i in range(5)]
    body = expect(a, "POST", "/v1/patterns", 200, body=good)
    A.check(json.loads(body)["accepted"] == [p["id"] for p in good], "accepted ids")
    nd = "\n".join(json.dumps(A.pattern(i, "nd")) for i in range(3)).encode()
    expect(a, "POST", "/v1/patterns", 200, body=nd, ctype="application/x-ndjson")
    body = expect(a, "POST", "/v1/patterns", 400, body=b'[{"id": "x",')
    A.check("offset" in json.loads(body), "malformed JSON answer has no offset")
    expect(a, "POST", "/v1/patterns", 400, body=[{"id": "bad"}])
    expect(a, "POST", "/v1/patterns", 413, body=b"[" + b" " * (300 * 1024) + b"]")
    t.join(60)
    A.check("ev" in got_b and len(got_b["ev"]) == 3, "b's stream of pattern:received")
    A.check(all("pattern" in e and "sourceId" in e for e in got_b["ev"]),
            "pattern:received without pattern or sourceId")

    # Patterns out.
    body = expect(a, "GET", "/v1/patterns", 200)
    A.check(len(json.loads(body)) == 8, "GET /v1/patterns lists %d" % len(json.loads(body)))
    expect(a, "GET", "/v1/patterns?format=ndjson&type=test&limit=2", 200)
    # Issue 15.14: pages of 3, each record with its sequence, followed by `next`
    # until null, list exactly what the whole listing does, in order.
    seen, since, pages = [], 0, 0
    while since is not None and pages < 100:
        page = json.loads(expect(a, "GET", "/v1/patterns?format=page&limit=3&since=%d" % since,
                                 200))
        A.check(len(page["items"]) <= 3, "a page of limit 3 has %d" % len(page["items"]))
        seen += [(i["seq"], i["pattern"]["id"]) for i in page["items"]]
        since, pages = page["next"], pages + 1
    whole = [p["id"] for p in json.loads(expect(a, "GET", "/v1/patterns", 200))]
    A.check([i for _, i in seen] == whole, "pages list %s, the listing %s" % (seen, whole))
    A.check(all(x[0] < y[0] for x, y in zip(seen, seen[1:])), "sequences not increasing")
    A.check(pages >= 3, "8 records in pages of 3 took %d pages" % pages)
    expect(a, "GET", "/v1/patterns?since=abc", 400)
    expect(a, "GET", "/v1/patterns?format=xml", 400)
    expect(a, "GET", "/v1/patterns/o-000001", 200, spec_path="/v1/patterns/{id}")
    expect(a, "GET", "/v1/patterns/absent", 404, spec_path="/v1/patterns/{id}")
    expect(a, "DELETE", "/v1/patterns/o-000002", 200, spec_path="/v1/patterns/{id}")
    expect(a, "DELETE", "/v1/patterns/absent", 404, spec_path="/v1/patterns/{id}")
    expect(a, "POST", "/v1/sync", 202)

    # State, metrics, events, backup.
    st = json.loads(expect(a, "GET", "/v1/state", 200))
    A.check(st["peers"]["b"]["connected"], "state: b not connected")
    expect(b, "GET", "/v1/state", 200, token=None)
    expect(a, "GET", "/metrics", 200)
    ev = sse(a, "?lastEventId=1", 3)
    A.check(ev[0]["type"] == "reset", "an old Last-Event-ID did not give a reset first: %s" %
            ev[0])
    ev = sse(a, "?type=pattern:stored,pattern:deleted", 4,
             headers={"Last-Event-ID": str(ev[1]["id"] - 1)})
    A.check({e["type"] for e in ev} <= {"pattern:stored", "pattern:deleted"}, "?type= filter")
    body = expect(a, "GET", "/v1/backup", 200)
    A.check(body.startswith(b"SQLite format 3\0"), "the backup is not an SQLite file")
    expect(a, "GET", "/v1/backup", 401, token=None)
    expect(a, "DELETE", "/v1/peers/b", 200, spec_path="/v1/peers/{id}")

    missing = []
    for path, item in SPEC["paths"].items():
        for method in item:
            if method != "parameters" and (path, method) not in COVERED:
                missing.append("%s %s" % (method.upper(), path))
    A.check(not missing, "documented but not exercised: %s" % missing)
    return a


# ---- 3. the pattern schema and the daemon agree ----
def base():
    return A.pattern(1, "s")


def variant(fn):
    p = copy.deepcopy(base())
    fn(p)
    return p


REJECTED = [
    ("not an object", 5),
    ("no id", variant(lambda p: p.pop("id"))),
    ("empty id", variant(lambda p: p.update(id=""))),
    ("id of 300 characters", variant(lambda p: p.update(id="x" * 300))),
    ("id a number", variant(lambda p: p.update(id=7))),
    ("no agentId", variant(lambda p: p.pop("agentId"))),
    ("agentId a number", variant(lambda p: p.update(agentId=1))),
    ("no type", variant(lambda p: p.pop("type"))),
    ("no data", variant(lambda p: p.pop("data"))),
    ("no metadata", variant(lambda p: p.pop("metadata"))),
    ("metadata a string", variant(lambda p: p.update(metadata="m"))),
    ("no metadata.source", variant(lambda p: p["metadata"].pop("source"))),
    ("no metadata.tags", variant(lambda p: p["metadata"].pop("tags"))),
    ("tags a string", variant(lambda p: p["metadata"].update(tags="a"))),
    ("a tag a number", variant(lambda p: p["metadata"].update(tags=["a", 2]))),
    ("priority 0", variant(lambda p: p["metadata"].update(priority=0))),
    ("priority 11", variant(lambda p: p["metadata"].update(priority=11))),
    ("priority a string", variant(lambda p: p["metadata"].update(priority="5"))),
    ("expiresAt negative", variant(lambda p: p["metadata"].update(expiresAt=-1))),
    ("checksum not hex", variant(lambda p: p["metadata"].update(checksum="z" * 64))),
    ("checksum short", variant(lambda p: p["metadata"].update(checksum="ab"))),
    ("no timestamp", variant(lambda p: p.pop("timestamp"))),
    ("timestamp negative", variant(lambda p: p.update(timestamp=-5))),
    ("timestamp a string", variant(lambda p: p.update(timestamp="1"))),
    ("version 0", variant(lambda p: p.update(version=0))),
    ("version 1.5", variant(lambda p: p.update(version=1.5))),
    ("no version", variant(lambda p: p.pop("version"))),
    ("tombstone with data", {"deleted": True, "id": "s-000001", "timestamp": 1, "version": 9,
                             "data": {}}),
    ("deleted false", {"deleted": False, "id": "s-000001", "timestamp": 1, "version": 9}),
    ("tombstone without version", {"deleted": True, "id": "s-000001", "timestamp": 1}),
]

ACCEPTED = [
    ("a plain pattern", base()),
    ("no priority, string data", variant(lambda p: (p["metadata"].pop("priority"),
                                                    p.update(data="text")))),
    ("empty tags, null data", variant(lambda p: (p["metadata"].update(tags=[]),
                                                 p.update(data=None, id="s-2")))),
    ("an expiry in the future", variant(lambda p: p["metadata"].update(
        expiresAt=4102444800000) or p.update(id="s-3"))),
    ("a member of its own", variant(lambda p: p.update(id="s-4", extra={"k": [1, 2]}))),
    ("unicode id", variant(lambda p: p.update(id="s-\u00e9t\u00e9"))),
    ("a newer version", variant(lambda p: p.update(version=2))),
    ("a tombstone", {"deleted": True, "id": "s-3", "timestamp": 5, "version": 9}),
]


def check_patterns(a):
    v = V(PATTERN_SCHEMA)
    for name, rec in REJECTED:
        st, _, body = call(a, "POST", "/v1/patterns", [rec])
        res = json.loads(body)
        A.check(st == 400 and len(res.get("rejected", [])) == 1,
                "the daemon did not reject %s: %d %s" % (name, st, body[:200]))
        A.check(not v.is_valid(rec), "pattern.schema.json accepts %s (the daemon says %s: %s)" %
                (name, res["rejected"][0]["field"], res["rejected"][0]["error"]))
    for name, rec in ACCEPTED:
        errs = [e.message for e in v.iter_errors(rec)]
        A.check(not errs, "pattern.schema.json rejects %s: %s" % (name, errs[:3]))
        st, _, body = call(a, "POST", "/v1/patterns", [rec])
        A.check(st == 200 and json.loads(body)["accepted"] == [rec["id"]],
                "the daemon did not accept %s: %d %s" % (name, st, body[:300]))
    # Every record the daemon returns is valid too (with the checksum it adds).
    st, _, body = call(a, "GET", "/v1/patterns")
    for rec in json.loads(body):
        A.check(v.is_valid(rec), "a stored record is not valid: %s" % rec)


def main():
    check_spec()
    wd = A.workdir("openapi")
    try:
        a = exercise(wd)
        check_patterns(a)
        print("openapi: 3 passed, 0 failed")
    finally:
        A.cleanup(wd)


if __name__ == "__main__":
    main()
