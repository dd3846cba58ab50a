// Types of the agentsync npm package: seed 000's QUICServer and seed 004's FederationHub.
import { EventEmitter } from 'node:events';

/** A pattern, seed 000's shape. Unknown top-level fields are kept. */
export interface Pattern {
  /** Unique identifier: a non-empty string of at most 256 bytes. */
  id: string;
  /** Source agent id. */
  agentId: string;
  /** Pattern type, e.g. 'test_execution', 'coverage_gap'. */
  type: string;
  /** Pattern payload: any JSON value. */
  data: any;
  metadata: {
    /** Source agent name. */
    source: string;
    /** Classification tags. */
    tags: string[];
    /** Sync priority, an integer 1-10. */
    priority?: number;
    /** Expiration timestamp (ms since the epoch): the pattern is purged then. */
    expiresAt?: number;
    /** SHA-256 (64 hex digits) of the canonical form; filled in by agentsync. */
    checksum?: string;
  };
  /** Creation timestamp (ms since the epoch), an integer >= 0. */
  timestamp: number;
  /** Version number for updates, an integer >= 1: the higher version wins. */
  version: number;
  [extra: string]: unknown;
}

/** A peer of the configuration (seed 000's quic.peers[]). */
export interface PeerConfig {
  id: string;
  address: string;
  port: number;
  priority?: number;
}

/** TLS files (PEM). Without cert, a self-signed CA and certificate are made in dataDir/certs. */
export interface TlsConfig {
  cert?: string;
  key?: string;
  ca?: string;
  /** Verify peers against ca (default true). */
  rejectUnauthorized?: boolean;
}

export interface RetryConfig {
  maxAttempts?: number;
  /** ms */
  baseDelay?: number;
  /** ms */
  maxDelay?: number;
  backoffMultiplier?: number;
}

/** Federation hub mode (seed 004's hub): this node serves agents. */
export interface HubConfig {
  enabled?: boolean;
  algorithms?: Array<'HS256' | 'RS256' | 'ES256'>;
  hs256SecretFile?: string;
  rs256PublicKeyFile?: string;
  es256PublicKeyFile?: string;
  issuer?: string;
  audience?: string;
  skewSeconds?: number;
  maxAgents?: number;
  maxTenants?: number;
  /** Keep a hub as this node's upstream. */
  upstream?: { endpoint?: string; token?: string; tokenFile?: string; hubId?: string };
}

/**
 * The "quic" object of .agentic-qe/config/quic.json (seed 000) plus agentsync's
 * own keys: the names, defaults and validation of agentsyncd's config file.
 */
export interface QUICConfig {
  enabled?: boolean;
  /** UDP port; 0 picks a free one (see QUICServer#port). Default 4433. */
  port?: number;
  /** Bind address, an IPv4 or IPv6 literal. Default 127.0.0.1. */
  host?: string;
  /** Peers dialled at start(). */
  peers?: PeerConfig[];
  /** Resend/flush interval, ms. */
  syncInterval?: number;
  /** Patterns per batch. */
  batchSize?: number;
  compression?: boolean;
  tls?: TlsConfig;
  retry?: RetryConfig;

  /** This node's id; default: the id its certificate names, else the host name. */
  nodeId?: string;
  /** Store directory; default ./agentsync-data. */
  dataDir?: string;
  tenant?: string;
  /** Only these peer ids may connect. */
  allow?: string[];
  /** Unacknowledged batches in flight per peer. */
  window?: number;
  limits?: { maxPatternBytes?: number; maxFrameBytes?: number };
  rateLimit?: { patternsPerSecond?: number; bytesPerSecond?: number };
  /** What this node asks its peers to send it. */
  filter?: { types?: string[]; tags?: string[] };
  /** ms */
  healthInterval?: number;
  statelessRetry?: boolean;
  /** ms */
  idleTimeout?: number;
  /** ms */
  keepAlive?: number;
  /** Survive power loss, not only a crash (an fsync per commit). */
  fsync?: boolean;
  /** µs of polling after input before the loop sleeps. */
  busyPoll?: number;
  /** agentsyncd's HTTP API and logs (read, not used by the package). */
  api?: { listen?: string; token?: string };
  log?: { format?: 'text' | 'json'; level?: 'error' | 'warn' | 'info' | 'debug' };
  hub?: HubConfig;
}

/** What applying one change did. */
export type ApplyOutcome = 'inserted' | 'updated' | 'stale' | 'duplicate' | 'conflict_won' | 'conflict_lost';

export interface ApplyResult {
  outcome: ApplyOutcome;
  /** The change-log sequence it got; 0 when nothing changed. */
  seq: number;
}

export interface PeerState {
  connected: boolean;
  /** Batches the peer acknowledged. */
  syncCount: number;
  errorCount: number;
  /** Smoothed RTT, ms. */
  latency: number;
  /** Changes the peer has not acknowledged yet. */
  lag: number;
  degraded: boolean;
  /** "host:port" */
  address: string;
  bytesIn: number;
  bytesOut: number;
  /** This node's change-log sequence the peer acknowledged. */
  ackedSeq: number;
}

/** getState(), seed 000's shape plus the store. */
export interface SyncState {
  running: boolean;
  connections: number;
  stats: {
    totalSyncs: number;
    successfulSyncs: number;
    failedSyncs: number;
    /** ms */
    averageLatency: number;
    bytesTransferred: number;
    /** Wire bytes / raw bytes of batches sent. */
    compressionRatio: number;
  };
  peers: Map<string, PeerState>;
  store: { id: string; patterns: number; seq: number; digest: string };
}

/** A filter of the local store: all set fields must match; in change-log order. */
export interface PatternQuery {
  type?: string;
  tag?: string;
  agentId?: string;
  /** Only records changed after this store sequence (getState().store.seq). */
  since?: number;
  limit?: number;
}

/** The state a health event carries. */
export interface PeerHealth {
  connected: boolean;
  errorCount: number;
  consecutiveErrors: number;
  degraded: boolean;
  down: boolean;
}

/** An Error from agentsync: message "FIELD: reason". */
export interface AgentsyncError extends Error {
  /** The AGS_ERR_* name, e.g. 'AGS_ERR_PATTERN', 'AGS_ERR_CONFIG'. */
  code: string;
  /** The library's (negative) error number. */
  errno: number;
  /** The JSON path at fault, e.g. 'metadata.priority', 'quic.peers[0].port', '[3].id'. */
  field?: string;
  /** For malformed JSON: the byte offset. */
  offset?: number;
}

/** Events and their payloads (seed 000's names, plus agentsync's own). */
export interface QUICServerEvents {
  'peer:connected': [{ peerId: string; address: string; tenant?: string }];
  'peer:disconnected': [{ peerId: string; reason?: string; tenant?: string }];
  'peer:error': [{ peerId: string; error: Error; address?: string }];
  'peer:health:degraded': [{ peerId: string; state: PeerHealth }];
  'peer:health:recovered': [{ peerId: string; state: PeerHealth }];
  'sync:completed': [{ peerId: string; patternCount: number; latency: number }];
  'sync:failed': [{ peerId: string; patternId?: string; error: Error }];
  'pattern:received': [{ pattern: Pattern; sourceId: string; tenant?: string }];
  /** A peer deleted a pattern (a tombstone arrived). */
  'pattern:deleted': [{ patternId: string; version: number; timestamp: number; sourceId: string; tenant?: string }];
  /** Two versions of one record met; every node keeps the same winner. */
  'pattern:conflict': [{ pattern: Pattern; sourceId: string; resolution?: string; tenant?: string }];
  /** A connection was refused before it became a peer (TLS, unknown id, ...). */
  'connection:refused': [{ address: string; error: Error }];
  /** An entry refused for good, by the peer or by us (PROTOCOL.md, "Refusals"). */
  'sync:rejected': [{ peerId: string; patternId?: string; sourceId?: string; error: Error }];
  /** A store went back in sequence, ours or the peer's (PROTOCOL.md, "Store epochs"). */
  'store:rollback': [{ peerId: string; error: Error }];
  /** A dial got no (complete) answer within quic.handshakeTimeout: not a refusal. */
  'connection:timeout': [{ peerId?: string; address: string; error: Error }];
  /** Events were dropped because JavaScript fell more than 65,536 behind. */
  'events:overflow': [{ dropped: number }];
}

export type FederationHubEvents = QUICServerEvents;

/** An EventEmitter whose on/once/off/emit know the event map E. */
declare class TypedEmitter<E extends { [K in keyof E]: unknown[] }> extends EventEmitter {
  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this;
  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this;
  addListener<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this;
  prependListener<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this;
  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this;
  removeListener<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this;
  emit<K extends keyof E & string>(event: K, ...args: E[K]): boolean;
}

/** Seed 000's QUICServer: an agentsync node in this process. */
export declare class QUICServer extends TypedEmitter<QUICServerEvents> {
  /** Throws an AgentsyncError naming the JSON path of a bad value ('quic.port: ...'). */
  constructor(config: QUICConfig);
  readonly nodeId: string;
  /** The UDP port once started (useful with port 0), else 0. */
  readonly port: number;
  /** Opens the store, binds, connects the configured peers; resolves once listening. */
  start(): Promise<void>;
  /** Closes every connection and the store; start() may be called again. */
  stop(): Promise<void>;
  /** Adds a peer and dials it (retried with backoff); 'peer:connected' says when it is up. */
  connectToPeer(address: string, port: number, peerId: string): Promise<void>;
  disconnectFromPeer(peerId: string): Promise<void>;
  /** Stores the pattern durably, then syncs it: to every peer, or only to `peerIds` (not relayed). */
  syncPattern(pattern: Pattern, peerIds?: readonly string[]): Promise<ApplyResult>;
  /** All of them in one transaction, or none (the error names the index: '[3].id'). */
  syncPatterns(patterns: readonly Pattern[]): Promise<ApplyResult[]>;
  /** Deletes a pattern everywhere (a tombstone one version up). */
  delete(id: string): Promise<ApplyResult>;
  /** Reloads the TLS files (key rotation); new connections use them. */
  reloadTls(): Promise<void>;
  getState(): SyncState;
  /** Every live pattern of the store (the server must be started). */
  getCachedPatterns(): Pattern[];
  query(filter?: PatternQuery): Pattern[];
  get(id: string): Pattern | undefined;
  /** Lets the process exit while the server runs. */
  unref(): this;
  ref(): this;
}

/** Seed 004's configuration, plus agentsync's options. */
export interface FederationHubConfig {
  /** 'quic://host:port' (port default 4433). */
  endpoint: string;
  /** Must equal the token's sub (default: the sub). */
  agentId?: string;
  /** Must equal the token's tenant (default: it). */
  tenantId?: string;
  /** The JWT (or tokenFile). */
  token?: string;
  tokenFile?: string;
  /** Must be true (the default): agentsync always uses mutual TLS. */
  enableMTLS?: boolean;
  cert: string;
  key: string;
  ca: string;
  /** Local store and TLS resumption state; default ./agentsync-agent. */
  dataDir?: string;
  /** The id the hub's certificate must name. */
  hubId?: string;
  /** Longest wait of connect() and sync(), ms (default 30000). */
  timeoutMs?: number;
  batchSize?: number;
  compression?: boolean;
}

export interface SyncResult {
  pulled: number;
  pushed: number;
  conflicts: number;
  durationMs: number;
}

export interface SyncStats {
  /** ms since the epoch of the last completed sync, 0 if none. */
  lastSyncTime: number;
  vectorClock: Record<string, number>;
  /** The last connection resumed a TLS session ... */
  resumed: boolean;
  /** ... and sent 0-RTT data the hub accepted. */
  earlyData: boolean;
}

/** Seed 004's FederationHub: an ephemeral agent syncing with an agentsync hub. */
export declare class FederationHub extends TypedEmitter<FederationHubEvents> {
  /** Opens the agent's local store; throws an AgentsyncError naming a bad option. */
  constructor(config: FederationHubConfig);
  readonly agentId: string;
  connect(): Promise<void>;
  /** Pushes local changes, then pulls the tenant's (seed 004 passes a db: it is not needed). */
  sync(db?: unknown): Promise<SyncResult>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  getSyncStats(): SyncStats;
  /** A local insert or update, pushed on the next sync (at once when connected). */
  put(pattern: Pattern): Promise<ApplyResult>;
  delete(id: string): Promise<ApplyResult>;
  getCachedPatterns(): Pattern[];
  query(filter?: PatternQuery): Pattern[];
  get(id: string): Pattern | undefined;
  getStoreState(): { patterns: number; seq: number; digest: string };
  unref(): this;
  ref(): this;
}

/** Makes (or completes) a CA and a certificate per node id in `dir` (as `agentsync certs init`). */
export declare function initCerts(dir: string, nodeIds: string[], options?: { keyType?: 'ed25519' | 'p256' }): Promise<void>;

export declare const version: string;
