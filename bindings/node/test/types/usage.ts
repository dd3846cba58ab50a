// Type-checked by `tsc --strict --noEmit` (ctest node_types), never run. It holds seed 000's
// own usage and agent-integration code with one change, the import, and uses every part of
// the typed surface; the @ts-expect-error lines must stay errors (the types are that strict).
import { QUICServer, FederationHub, initCerts, version } from 'agentsync';
import type {
  AgentsyncError, ApplyResult, FederationHubConfig, Pattern, PatternQuery, PeerState, QUICConfig,
  SyncResult, SyncState, SyncStats,
} from 'agentsync';
import config from './.agentic-qe/config/quic.json';

declare function handleTestExecution(data: any): void;

// ---- Seed 000, "Basic Server Setup" ----
async function basicServerSetup(): Promise<void> {
  // Create server
  const server = new QUICServer(config.quic);

  // Start server
  await server.start();

  // Connect to peers
  await server.connectToPeer('192.168.1.10', 4433, 'agent-1');
  await server.connectToPeer('192.168.1.11', 4433, 'agent-2');

  // Sync pattern to all peers
  const pattern = {
    id: 'pattern_1',
    agentId: 'test-generator',
    type: 'test_execution',
    data: { testCase: 'UserLogin', result: 'passed' },
    metadata: {
      source: 'test-generator',
      tags: ['unit', 'auth'],
      priority: 1
    },
    timestamp: Date.now(),
    version: 1
  };

  await server.syncPattern(pattern);

  // Sync to specific peers
  await server.syncPattern(pattern, ['agent-1']);

  // Batch sync
  const pattern1 = pattern, pattern2 = { ...pattern, id: 'pattern_2' }, pattern3 = { ...pattern, id: 'pattern_3' };
  const patterns = [pattern1, pattern2, pattern3];
  await server.syncPatterns(patterns);

  // Stop server
  await server.stop();
}

// ---- Seed 000, "Event Handling", "Monitoring" and "Troubleshooting" ----
function eventHandling(server: QUICServer): void {
  // Connection events
  server.on('peer:connected', ({ peerId, address }) => {
    console.log(`Peer ${peerId} connected from ${address}`);
  });

  server.on('peer:disconnected', ({ peerId }) => {
    console.log(`Peer ${peerId} disconnected`);
  });

  // Sync events
  server.on('sync:completed', ({ peerId, patternCount, latency }) => {
    console.log(`Synced ${patternCount} patterns to ${peerId} in ${latency}ms`);
  });

  server.on('sync:failed', ({ peerId, patternId, error }) => {
    console.error(`Sync failed to ${peerId}: ${error.message}`);
  });

  // Pattern events
  server.on('pattern:received', ({ pattern, sourceId }) => {
    console.log(`Received pattern ${pattern.id} from ${sourceId}`);

    // Process pattern
    if (pattern.type === 'test_execution') {
      handleTestExecution(pattern.data);
    }
  });

  // Health events
  server.on('peer:health:degraded', ({ peerId, state }) => {
    console.warn(`Peer ${peerId} health degraded:`, state);
  });

  // Check peer connectivity
  server.on('peer:error', ({ peerId, error }) => {
    console.error(`Peer ${peerId} error:`, error);
  });

  // Monitor latency
  server.on('sync:completed', ({ peerId, latency }) => {
    if (latency > 200) {
      console.warn(`High latency to ${peerId}: ${latency}ms`);
    }
  });
}

function monitoring(server: QUICServer): void {
  // Get server state
  const state = server.getState();

  console.log('Server running:', state.running);
  console.log('Active connections:', state.connections);
  console.log('Total syncs:', state.stats.totalSyncs);
  console.log('Success rate:',
    (state.stats.successfulSyncs / state.stats.totalSyncs * 100).toFixed(2) + '%');
  console.log('Average latency:', state.stats.averageLatency + 'ms');
  console.log('Bytes transferred:', state.stats.bytesTransferred);
  console.log('Compression ratio:', state.stats.compressionRatio);

  // Check peer states
  state.peers.forEach((peerState, peerId) => {
    console.log(`Peer ${peerId}:`, {
      connected: peerState.connected,
      syncCount: peerState.syncCount,
      errorCount: peerState.errorCount,
      latency: peerState.latency
    });
  });

  // Get cached patterns
  const patterns = server.getCachedPatterns();
  console.log('Cached patterns:', patterns.length);
}

// ---- Seed 000, "Agent Integration Example" (BaseAgent and TaskAssignment are the app's) ----
interface TaskAssignment { id: string; data: unknown }
declare class BaseAgent {
  protected config: { quic?: QUICConfig & { enabled?: boolean } };
  protected agentId: { id: string };
  initialize(): Promise<void>;
  cleanup(): Promise<void>;
}

export class TestGeneratorAgent extends BaseAgent {
  private quicServer?: QUICServer;

  async initialize(): Promise<void> {
    await super.initialize();

    // Initialize QUIC sync
    if (this.config.quic?.enabled) {
      this.quicServer = new QUICServer(this.config.quic);
      await this.quicServer.start();

      // Handle incoming patterns
      this.quicServer.on('pattern:received', async ({ pattern }) => {
        if (pattern.type === 'coverage_gap') {
          // Generate tests for coverage gaps
          await this.generateTestsForGaps(pattern.data);
        }
      });
    }
  }

  async executeTask(assignment: TaskAssignment): Promise<any> {
    // Generate tests
    const tests = await this.generateTests(assignment.data);

    // Share pattern with other agents
    if (this.quicServer) {
      const pattern = {
        id: `test_gen_${Date.now()}`,
        agentId: this.agentId.id,
        type: 'test_generation',
        data: { tests, coverage: this.calculateCoverage(tests) },
        metadata: {
          source: 'test-generator',
          tags: ['generated', 'unit']
        },
        timestamp: Date.now(),
        version: 1
      };

      await this.quicServer.syncPattern(pattern);
    }

    return tests;
  }

  async cleanup(): Promise<void> {
    if (this.quicServer) {
      await this.quicServer.stop();
    }
    await super.cleanup();
  }

  private async generateTests(data: unknown): Promise<string[]> { return [String(data)]; }
  private async generateTestsForGaps(data: any): Promise<void> { void data; }
  private calculateCoverage(tests: string[]): number { return tests.length; }
}

// ---- Seed 004's FederationHub, as an ephemeral agent uses it ----
async function ephemeralAgent(): Promise<void> {
  const hubConfig: FederationHubConfig = {
    endpoint: 'quic://hub.example:4433',
    agentId: 'agent-7',
    tenantId: 'acme',
    tokenFile: '/run/secrets/agent.jwt',
    enableMTLS: true,
    cert: 'agent.pem', key: 'agent-key.pem', ca: 'ca.pem',
    dataDir: './agent-data',
    hubId: 'hub', timeoutMs: 10000, batchSize: 100, compression: true,
  };
  const hub = new FederationHub(hubConfig);
  await hub.connect();
  const db = {};
  const r: SyncResult = await hub.sync(db);
  console.log(r.pulled, r.pushed, r.conflicts, r.durationMs.toFixed(1));
  const stats: SyncStats = hub.getSyncStats();
  const clock: number = stats.vectorClock['agent-7'];
  console.log(stats.lastSyncTime, clock, stats.resumed, stats.earlyData, hub.isConnected(), hub.agentId);
  const put: ApplyResult = await hub.put({
    id: 'x', agentId: 'agent-7', type: 't', data: null, metadata: { source: 's', tags: [] }, timestamp: 0, version: 1,
  });
  console.log(put.outcome === 'inserted', (await hub.delete('x')).seq);
  const pulled: Pattern[] = hub.getCachedPatterns();
  const gaps: Pattern[] = hub.query({ type: 'coverage_gap', limit: 10 });
  const one: Pattern | undefined = hub.get('x');
  const store: { patterns: number; seq: number; digest: string } = hub.getStoreState();
  console.log(pulled.length, gaps.length, one?.metadata.checksum, store.digest);
  hub.on('pattern:conflict', ({ pattern, sourceId, resolution }) => console.log(pattern.id, sourceId, resolution));
  hub.unref().ref();
  await hub.disconnect();
}

// ---- The rest of the surface ----
async function everythingElse(): Promise<void> {
  await initCerts('./certs', ['a', 'b'], { keyType: 'ed25519' });
  const cfg: QUICConfig = {
    nodeId: 'a', port: 0, dataDir: './a', allow: ['b'], window: 16, filter: { types: ['t'] },
    limits: { maxPatternBytes: 65536 }, rateLimit: { patternsPerSecond: 1000 }, fsync: true, busyPoll: 0,
    hub: { enabled: false, upstream: { endpoint: 'quic://hub:4433', tokenFile: 't.jwt' } },
  };
  const s = new QUICServer(cfg);
  const id: string = s.nodeId;
  const port: number = s.port;
  console.log(id, port, version);
  const results: ApplyResult[] = await s.syncPatterns([]);
  const deleted: ApplyResult = await s.delete('x');
  await s.reloadTls();
  await s.disconnectFromPeer('b');
  const state: SyncState = s.getState();
  const peer: PeerState | undefined = state.peers.get('b');
  console.log(results.length, deleted.outcome, peer?.lag, peer?.degraded, state.store.digest);
  const q: PatternQuery = { type: 't', tag: 'u', agentId: 'a', since: state.store.seq, limit: 5 };
  const found: Pattern[] = s.query(q);
  const got: Pattern | undefined = s.get('x');
  console.log(found.length, got?.version);
  s.on('pattern:deleted', ({ patternId, version: v, sourceId }) => console.log(patternId, v, sourceId));
  s.on('peer:health:recovered', ({ state: h }) => console.log(h.degraded, h.consecutiveErrors));
  s.on('connection:refused', ({ address, error }) => console.log(address, error.message));
  s.on('events:overflow', ({ dropped }) => console.log(dropped));
  s.once('sync:failed', ({ error }) => {
    const e = error as AgentsyncError;
    console.log(e.code, e.field, e.errno);
  });
  try {
    await s.syncPattern({ id: 'bad' } as Pattern);
  } catch (e) {
    const err = e as AgentsyncError;
    console.log(err.code, err.field, err.offset);
  }
  s.unref().ref();

  // The types say what is wrong:
  // @ts-expect-error: no such event
  s.on('pattern:recieved', () => {});
  // @ts-expect-error: peer:connected has no `pattern`
  s.on('peer:connected', ({ pattern }) => console.log(pattern));
  // @ts-expect-error: a pattern needs metadata
  await s.syncPattern({ id: 'x', agentId: 'a', type: 't', data: 1, timestamp: 0, version: 1 });
  // @ts-expect-error: the port is a number
  await s.connectToPeer('127.0.0.1', '4433', 'b');
  // @ts-expect-error: peers is a Map, not an array
  console.log(s.getState().peers[0]);
  // @ts-expect-error: an unknown config key
  new QUICServer({ prot: 4433 });
  // @ts-expect-error: FederationHub needs an endpoint and the TLS files
  new FederationHub({ token: 't' });
}

void basicServerSetup, eventHandling, monitoring, ephemeralAgent, everythingElse;
