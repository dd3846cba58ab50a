// SPDX-License-Identifier: Apache-2.0
'use strict';
/*
 * agentsync for Node.js: seed 000's QUICServer and seed 004's FederationHub,
 * running the agentsync library inside this process (agentsync.node, a
 * Node-API addon). The native side does the work on threads of its own; this
 * file gives it the seed's shapes: an EventEmitter with the seed's events and
 * payloads, Promises for everything that waits, plain objects for patterns.
 */
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/* The addon: AGENTSYNC_ADDON (tests, a build tree), else the one `npm install` built. */
function loadAddon() {
  const candidates = [
    process.env.AGENTSYNC_ADDON,
    path.join(__dirname, 'build', 'bindings', 'node', 'agentsync.node'),
  ].filter(Boolean);
  for (const file of candidates) {
    if (fs.existsSync(file)) return require(file);
  }
  throw new Error(
    `agentsync: the native addon is not built (looked for ${candidates.join(', ')}); ` +
      'run `npm install` in the package (it builds it) or set AGENTSYNC_ADDON',
  );
}

const native = loadAddon();

/* Event type numbers (from the library) and back. */
const TYPES = native.eventTypes;
const NAMES = Object.fromEntries(Object.entries(TYPES).map(([n, t]) => [t, n]));
/* Events of this layer, and the library event each one comes from. */
const DERIVED = { 'pattern:deleted': 'pattern:received' };
const OVERFLOW = 'events:overflow';
/* Patterns per JSON text handed to the addon by syncPatterns, and in its last text. */
const PART = 250;
const LAST_PART = 50;
/* Apply outcome names by number (ags_apply_outcome_name). */
const OUTCOMES = native.outcomes;

/*
 * process.exit() runs no Node-API cleanup hook: the library's threads would
 * still run while the process exits. So every native object still alive is
 * torn down, synchronously, on 'exit' (a natural exit too: then it is only
 * earlier than the hooks). Collected objects leave the set by themselves.
 */
const live = new Set();
const forget = new FinalizationRegistry((ref) => live.delete(ref));
function track(nat) {
  const ref = new WeakRef(nat);
  live.add(ref);
  forget.register(nat, ref);
}
process.on('exit', () => {
  for (const ref of live) ref.deref()?.closeSync();
  live.clear();
});

/* An Error in the library's form: message "FIELD: reason", code AGS_ERR_*, field. */
function agsError(code, field, message) {
  const e = new Error(field ? `${field}: ${message}` : message);
  e.code = code;
  if (field) e.field = field;
  return e;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/* A pattern's JSON text for the library; what cannot be serialised is the library's to refuse. */
function patternJson(p) {
  const s = JSON.stringify(p);
  return typeof s === 'string' ? s : 'null';
}

/*
 * Shared by both classes: the native object, the mask of events JavaScript
 * listens to (events nobody listens to are not copied out of the library),
 * and the translation of native events into the seed's payloads.
 */
function wireEvents(emitter, nat) {
  let mask = 0;
  const bitOf = (name) => {
    const base = DERIVED[name] || name;
    return TYPES[base] ? 1 << TYPES[base] : 0;
  };
  const update = () => {
    let m = 0;
    for (const name of emitter.eventNames()) {
      if (typeof name === 'string') m |= bitOf(name);
    }
    if (m !== mask) {
      mask = m;
      nat.setEvents(mask);
    }
  };
  emitter.on('newListener', (name) => {
    if (typeof name === 'string' && bitOf(name) && !(mask & bitOf(name))) {
      mask |= bitOf(name);
      nat.setEvents(mask);
    }
  });
  emitter.on('removeListener', update);
}

function makeDispatch(emitter) {
  const err = (m) => (m === undefined ? undefined : new Error(m));
  const state = (s) => {
    if (s === undefined) return undefined;
    try {
      return JSON.parse(s);
    } catch {
      return s;
    }
  };
  return function dispatch(type, peerId, address, error, st, pattern, patternId, sourceId,
    count, latency, tenant, tombstone) {
    if (type === 0) {
      emitter.emit(OVERFLOW, { dropped: peerId });
      return;
    }
    const name = NAMES[type];
    let payload;
    switch (name) {
      case 'peer:connected':
        payload = { peerId, address };
        break;
      case 'peer:disconnected':
        payload = { peerId };
        if (error !== undefined) payload.reason = error;
        break;
      case 'peer:error':
        payload = { peerId, error: err(error) };
        if (address !== undefined) payload.address = address;
        break;
      case 'peer:health:degraded':
      case 'peer:health:recovered':
        payload = { peerId, state: state(st) };
        break;
      case 'sync:completed':
        payload = { peerId, patternCount: count, latency };
        break;
      case 'sync:failed':
        payload = { peerId, patternId, error: err(error) };
        break;
      case 'pattern:received':
        if (tombstone) {
          const t = JSON.parse(pattern);
          emitter.emit('pattern:deleted', {
            patternId: t.id, version: t.version, timestamp: t.timestamp, sourceId,
            ...(tenant !== undefined ? { tenant } : {}),
          });
          return;
        }
        payload = { pattern: JSON.parse(pattern), sourceId };
        break;
      case 'pattern:conflict':
        payload = { pattern: JSON.parse(pattern), sourceId, resolution: error };
        break;
      case 'connection:refused':
        payload = { address, error: err(error) };
        break;
      default:
        payload = { peerId, address, error: err(error), patternId, sourceId };
    }
    if (tenant !== undefined) payload.tenant = tenant;
    emitter.emit(name, payload);
  };
}

/* quic.nodeId when the config has none: the id the certificate names, else the host's. */
function defaultNodeId(quic) {
  if (isPlainObject(quic.tls) && typeof quic.tls.cert === 'string') {
    try {
      return native.certNodeId(quic.tls.cert);
    } catch (e) {
      throw agsError('AGS_ERR_CONFIG', 'quic.tls.cert',
        `${e.message} (quic.nodeId is not set, so it is taken from this certificate)`);
    }
  }
  return native.sanitizeId(os.hostname());
}

const parseList = (json) => JSON.parse(json);
const parseOne = (json) => (json === undefined ? undefined : JSON.parse(json));

class QUICServer extends EventEmitter {
  #native;

  /**
   * `config` is the "quic" object of .agentic-qe/config/quic.json, parsed by
   * agentsyncd's own parser: a bad value throws an Error naming its JSON
   * path ("quic.peers[0].port: ..."), unknown keys are reported with
   * process.emitWarning and ignored.
   */
  constructor(config) {
    super();
    if (!isPlainObject(config)) {
      throw new TypeError('QUICServer(config): config must be the "quic" object of quic.json');
    }
    const quic = { ...config };
    if (quic.nodeId === undefined) quic.nodeId = defaultNodeId(quic);
    // The closure holds `this`: while the native side holds it, the server stays alive.
    this.#native = new native.Server(JSON.stringify({ quic }), makeDispatch(this));
    track(this.#native);
    wireEvents(this, this.#native);
    for (const w of this.#native.warnings) {
      process.emitWarning(`agentsync config: ${w}`, { code: 'AGENTSYNC_CONFIG' });
    }
  }

  /** This node's id (quic.nodeId, or the one taken from its certificate). */
  get nodeId() {
    return this.#native.nodeId;
  }

  /** The UDP port the server listens on once started (useful with port 0), else 0. */
  get port() {
    return this.#native.port();
  }

  async start() {
    await this.#native.start();
  }

  async stop() {
    await this.#native.stop();
  }

  async connectToPeer(address, port, peerId) {
    await this.#native.connectToPeer(address, port, peerId);
  }

  async disconnectFromPeer(peerId) {
    await this.#native.disconnectFromPeer(peerId);
  }

  async syncPattern(pattern, peerIds) {
    return this.#native.syncPattern(patternJson(pattern), peerIds);
  }

  async syncPatterns(patterns) {
    if (!Array.isArray(patterns)) throw new TypeError('syncPatterns(patterns): patterns must be an array');
    // The batch goes over as JSON texts of PART patterns each (one copy, one parse each:
    // ags_pattern_parse_array): the addon's worker parses part k while this thread
    // serialises part k+1, and the last part applies them all in one transaction.
    const nat = this.#native;
    let last;
    try {
      // The last part is small: its parse is the one that nothing overlaps.
      const tail = patterns.length > PART ? Math.min(LAST_PART, patterns.length) : patterns.length;
      const end = patterns.length - tail;
      for (let i = 0; i < end; i += PART) {
        // A part returns nothing: its error, if any, comes with the last part's Promise.
        nat.syncPatterns(JSON.stringify(patterns.slice(i, Math.min(i + PART, end))), true);
      }
      last = nat.syncPatterns(JSON.stringify(end === 0 ? patterns : patterns.slice(end)), false);
    } catch (e) {
      nat.syncPatterns('', 'abort');
      throw e;
    }
    const [outcomes, seqs] = await last;
    const out = new Array(outcomes.length);
    for (let i = 0; i < outcomes.length; i++) out[i] = { outcome: OUTCOMES[outcomes[i]], seq: seqs[i] };
    return out;
  }

  async delete(id) {
    return this.#native.delete(id);
  }

  async reloadTls() {
    await this.#native.reloadTls();
  }

  getState() {
    const s = this.#native.getState();
    s.peers = new Map(s.peers);
    return s;
  }

  getCachedPatterns() {
    return parseList(this.#native.query());
  }

  query(filter) {
    return parseList(this.#native.query(filter));
  }

  get(id) {
    return parseOne(this.#native.get(id));
  }

  /** Lets the process exit while the server runs (as net.Server#unref). */
  unref() {
    this.#native.unref();
    return this;
  }

  ref() {
    this.#native.ref();
    return this;
  }
}

/* FederationHub's options: seed 004's, then agentsync's. */
const HUB_KEYS = new Set(['endpoint', 'agentId', 'tenantId', 'token', 'tokenFile', 'enableMTLS', 'cert',
  'key', 'ca', 'dataDir', 'hubId', 'timeoutMs', 'batchSize', 'compression']);

class FederationHub extends EventEmitter {
  #native;

  /**
   * Seed 004's FederationHub: {endpoint: 'quic://host:4433', agentId,
   * tenantId, token | tokenFile, enableMTLS, cert, key, ca, dataDir}, plus
   * hubId, timeoutMs, batchSize, compression. Opens the agent's local store.
   */
  constructor(config) {
    super();
    if (!isPlainObject(config)) throw new TypeError('FederationHub(config): config must be an object');
    const c = { enableMTLS: true, ...config };
    for (const k of Object.keys(c)) {
      if (!HUB_KEYS.has(k)) process.emitWarning(`agentsync FederationHub: ${k}: unknown key, ignored`, { code: 'AGENTSYNC_CONFIG' });
    }
    if (c.enableMTLS !== true) {
      throw agsError('AGS_ERR_CONFIG', 'enableMTLS',
        'must be true: an agentsync hub always authenticates agents with mutual TLS (cert, key, ca) and a token');
    }
    let token = c.token;
    if (token !== undefined && c.tokenFile !== undefined) {
      throw agsError('AGS_ERR_CONFIG', 'tokenFile', 'give token or tokenFile, not both');
    }
    if (token === undefined && c.tokenFile !== undefined) {
      try {
        token = fs.readFileSync(c.tokenFile, 'utf8').trim();
      } catch (e) {
        throw agsError('AGS_ERR_CONFIG', 'tokenFile', `cannot read ${c.tokenFile}: ${e.message}`);
      }
    }
    if (c.compression !== undefined && typeof c.compression !== 'boolean') {
      throw agsError('AGS_ERR_CONFIG', 'compression', 'must be true or false');
    }
    this.#native = new native.Agent({
      endpoint: c.endpoint,
      token,
      agentId: c.agentId,
      tenantId: c.tenantId,
      dataDir: c.dataDir,
      cert: c.cert,
      key: c.key,
      ca: c.ca,
      hubId: c.hubId,
      timeoutMs: c.timeoutMs,
      batchSize: c.batchSize,
      compression: c.compression === false ? 0 : 1,
    }, makeDispatch(this));
    track(this.#native);
    wireEvents(this, this.#native);
  }

  /** The agent's id (the token's sub). */
  get agentId() {
    return this.#native.agentId;
  }

  async connect() {
    await this.#native.connect();
  }

  /** Push every local change, then pull what the tenant has: {pulled, pushed, conflicts, durationMs}. */
  async sync(_db) {
    return this.#native.sync();
  }

  async disconnect() {
    await this.#native.disconnect();
  }

  isConnected() {
    return this.#native.isConnected();
  }

  getSyncStats() {
    const s = this.#native.getSyncStats();
    s.vectorClock = JSON.parse(s.vectorClock);
    return s;
  }

  /** A local write (insert or update), pushed on the next sync (at once when connected). */
  async put(pattern) {
    return this.#native.put(patternJson(pattern));
  }

  async delete(id) {
    return this.#native.delete(id);
  }

  getCachedPatterns() {
    return parseList(this.#native.query());
  }

  query(filter) {
    return parseList(this.#native.query(filter));
  }

  get(id) {
    return parseOne(this.#native.get(id));
  }

  getStoreState() {
    return this.#native.getStoreState();
  }

  unref() {
    this.#native.unref();
    return this;
  }

  ref() {
    this.#native.ref();
    return this;
  }
}

/** Makes (or completes) a CA and one certificate per node id in `dir`, as `agentsync certs init`. */
function initCerts(dir, nodeIds, options = {}) {
  return native.initCerts(dir, nodeIds, options.keyType);
}

module.exports = { QUICServer, FederationHub, initCerts, version: native.version };
