/**
 * The events client against a real WebSocket server (`ws`) speaking the AI Studio protocol:
 * acks with the topic's head, history after `since`, contiguous seq per topic.
 */
import type { AddressInfo } from 'net';

import WebSocket, { WebSocketServer } from 'ws';

import { EventsClient, eventsUrl } from '../events';
import type { StudioEvent } from '../types';

class StudioServer {
  readonly wss: WebSocketServer;
  readonly history = new Map<string, StudioEvent[]>();
  readonly received: any[] = [];
  /** Per topic, the last seq whose event was pruned (as the server's retention does). */
  readonly prunedThrough = new Map<string, number>();
  /** Connections answered with nothing at all (a dead peer whose TCP connection stays up). */
  readonly silent = new Set<WebSocket>();
  /** Topics each live socket subscribed to. */
  private readonly subs = new Map<WebSocket, Set<string>>();
  connections = 0;

  constructor(port = 0) {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port });
    this.wss.on('connection', socket => {
      this.connections += 1;
      this.subs.set(socket, new Set());
      socket.on('close', () => this.subs.delete(socket));
      socket.on('message', raw => {
        const msg = JSON.parse(String(raw));
        this.received.push(msg);
        if (this.silent.has(socket)) {
          return;
        }
        const topics = this.subs.get(socket)!;
        if (msg.op === 'subscribe') {
          const events = this.history.get(msg.topic) ?? [];
          const head = events.length ? events[events.length - 1].seq : 0;
          if (typeof msg.since === 'number' && msg.since > head) {
            // the real server's answer to a `since` it never reached (handlers/events.py)
            const message = `since=${msg.since} is past the topic's last seq ${head}.`;
            socket.send(JSON.stringify({ op: 'error', topic: msg.topic, error: { code: 'conflict', message } }));
            return;
          }
          const pruned = this.prunedThrough.get(msg.topic) ?? 0;
          const ack: any = { op: 'subscribed', topic: msg.topic, seq: head };
          if (typeof msg.since === 'number' && msg.since < pruned) {
            ack.pruned_through = pruned;
          }
          socket.send(JSON.stringify(ack));
          if (typeof msg.since === 'number') {
            for (const event of events.filter(e => e.seq > Math.max(msg.since, pruned))) {
              socket.send(JSON.stringify(event));
            }
          }
          topics.add(msg.topic);
        } else if (msg.op === 'unsubscribe') {
          topics.delete(msg.topic);
        } else if (msg.op === 'ping') {
          socket.send(JSON.stringify({ op: 'pong' }));
        }
      });
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/aistudio/api/events`;
  }

  publish(topic: string, type: string, data: any): StudioEvent {
    const events = this.history.get(topic) ?? [];
    const event = { topic, seq: events.length + 1, type, data };
    events.push(event);
    this.history.set(topic, events);
    for (const [socket, topics] of this.subs) {
      if (topics.has(topic) && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(event));
      }
    }
    return event;
  }

  /** Drop every connection, as a server restart or a proxy timeout does. */
  dropAll(): void {
    for (const socket of this.subs.keys()) {
      socket.terminate();
    }
    this.subs.clear();
  }

  /** From now on, the open connections answer nothing (new ones do). */
  silence(): void {
    Array.from(this.subs.keys()).forEach(socket => this.silent.add(socket));
  }

  subscribers(topic: string): number {
    return Array.from(this.subs.values()).filter(t => t.has(topic)).length;
  }

  close(): Promise<void> {
    this.dropAll();
    return new Promise(resolve => this.wss.close(() => resolve()));
  }
}

async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 10));
  }
}

let server: StudioServer;
let client: EventsClient | null = null;

beforeEach(async () => {
  server = new StudioServer();
  await new Promise(resolve => server.wss.once('listening', resolve));
});

afterEach(async () => {
  client?.dispose();
  client = null;
  await server.close();
});

function connect(): EventsClient {
  client = new EventsClient({ url: server.url, WebSocket: WebSocket as any, minDelayMs: 20, maxDelayMs: 200 });
  return client;
}

test('the URL is under the base URL, with the token when Lab appends it', () => {
  expect(eventsUrl({ wsUrl: 'ws://h/base/', token: '' })).toBe('ws://h/base/aistudio/api/events');
  expect(eventsUrl({ wsUrl: 'ws://h/base', token: 'a b', appendToken: true })).toBe('ws://h/base/aistudio/api/events?token=a%20b');
  expect(eventsUrl({ wsUrl: 'ws://h/', token: 't', appendToken: false })).toBe('ws://h/aistudio/api/events');
});

test('live events after the head; history before it is not replayed without since', async () => {
  server.publish('user:alice', 'job', { id: 'old' });
  const seen: StudioEvent[] = [];
  connect().subscribe('user:alice', e => seen.push(e));
  await until(() => server.subscribers('user:alice') === 1, 'the subscription');
  expect(server.received[0]).toEqual({ op: 'subscribe', topic: 'user:alice' });
  await until(() => client!.lastSeq('user:alice') === 1, 'the ack');
  server.publish('user:alice', 'job', { id: 'new' });
  await until(() => seen.length === 1, 'the live event');
  expect(seen[0]).toMatchObject({ topic: 'user:alice', seq: 2, type: 'job', data: { id: 'new' } });
});

test('since replays history after that seq', async () => {
  for (const id of ['a', 'b', 'c']) {
    server.publish('job:1', 'status', { id });
  }
  const seen: StudioEvent[] = [];
  connect().subscribe('job:1', e => seen.push(e), 1);
  await until(() => seen.length === 2, 'the replay');
  expect(seen.map(e => e.data.id)).toEqual(['b', 'c']);
});

test('a dropped socket reconnects and resumes each topic from its last seq, nothing twice', async () => {
  const jobs: number[] = [];
  const uploads: number[] = [];
  const states: string[] = [];
  const events = connect();
  events.onState(state => states.push(state));
  events.subscribe('user:alice', e => jobs.push(e.seq));
  events.subscribe('upload:u1', e => uploads.push(e.seq));
  await until(() => server.subscribers('user:alice') === 1 && server.subscribers('upload:u1') === 1, 'both subscriptions');
  server.publish('user:alice', 'job', {});
  server.publish('upload:u1', 'progress', {});
  await until(() => jobs.length === 1 && uploads.length === 1, 'the first events');

  server.dropAll();
  await until(() => events.state === 'reconnecting', 'the drop');
  // published while the client is away: must arrive after the reconnect
  server.publish('user:alice', 'job', {});
  server.publish('user:alice', 'job', {});
  server.publish('upload:u1', 'status', {});

  await until(() => jobs.length === 3 && uploads.length === 2, 'the missed events');
  expect(jobs).toEqual([1, 2, 3]);
  expect(uploads).toEqual([1, 2]);
  expect(server.connections).toBeGreaterThanOrEqual(2);
  const resubscribes = server.received.filter(m => m.op === 'subscribe' && typeof m.since === 'number');
  expect(resubscribes).toEqual(expect.arrayContaining([
    { op: 'subscribe', topic: 'user:alice', since: 1 },
    { op: 'subscribe', topic: 'upload:u1', since: 1 }
  ]));
  expect(states).toContain('open');

  // and live again after the resume
  server.publish('upload:u1', 'status', {});
  await until(() => uploads.length === 3, 'a live event after the resume');
});

test('reconnects after the server was down for several attempts', async () => {
  const seen: number[] = [];
  const events = connect();
  events.subscribe('job:9', e => seen.push(e.seq));
  await until(() => server.subscribers('job:9') === 1, 'the subscription');
  const port = (server.wss.address() as AddressInfo).port;
  await server.close();
  await new Promise(resolve => setTimeout(resolve, 300)); // several failed attempts at 20..200 ms
  expect(events.state).not.toBe('open');
  // a restarted server on the same port, which lost nothing the client needs
  server = new StudioServer(port);
  await new Promise(resolve => server.wss.once('listening', resolve));
  await until(() => server.subscribers('job:9') === 1, 'the resubscription');
  expect(server.received[0]).toEqual({ op: 'subscribe', topic: 'job:9', since: 0 });
  server.publish('job:9', 'status', { state: 'running' });
  await until(() => seen.length === 1, 'the event after the restart');
});

test('the last listener of a topic unsubscribes it', async () => {
  const events = connect();
  const stop = events.subscribe('dataset:d1', () => undefined);
  await until(() => server.subscribers('dataset:d1') === 1, 'the subscription');
  stop();
  await until(() => server.subscribers('dataset:d1') === 0, 'the unsubscribe');
  expect(server.received).toContainEqual({ op: 'unsubscribe', topic: 'dataset:d1' });
});

test('a listener that throws does not stop the others', async () => {
  const seen: number[] = [];
  const events = connect();
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
  events.subscribe('job:2', () => {
    throw new Error('boom');
  });
  events.subscribe('job:2', e => seen.push(e.seq));
  await until(() => server.subscribers('job:2') === 1, 'the subscription');
  await until(() => events.lastSeq('job:2') === 0, 'the ack');
  server.publish('job:2', 'status', {});
  await until(() => seen.length === 1, 'the event');
});

describe('after an outage', () => {
  test('the state reads reconnecting through every failed attempt, and live again after', async () => {
    const states: string[] = [];
    const reconnects: number[] = [];
    const events = connect();
    events.onState(state => states.push(state));
    events.onReconnect(() => reconnects.push(Date.now()));
    events.subscribe('job:3', () => undefined);
    await until(() => events.state === 'open', 'the first connection');
    expect(events.disconnectedAt).toBeNull();
    expect(reconnects).toHaveLength(0); // the first connect is not a reconnect

    const port = (server.wss.address() as AddressInfo).port;
    const before = Date.now();
    await server.close();
    await until(() => events.state === 'reconnecting', 'the loss');
    expect(events.disconnectedAt!.getTime()).toBeGreaterThanOrEqual(before);
    await new Promise(resolve => setTimeout(resolve, 300)); // several failed attempts
    // no flicker through `connecting` or `closed` while the server is away
    expect(states).toEqual(['connecting', 'open', 'reconnecting']);

    server = new StudioServer(port);
    await new Promise(resolve => server.wss.once('listening', resolve));
    await until(() => events.state === 'open', 'the reconnection');
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'open']);
    expect(events.disconnectedAt).toBeNull();
    expect(reconnects).toHaveLength(1);
  });

  test('reconnectNow skips the backoff, and so does the network coming back', async () => {
    const target = new EventTarget();
    client = new EventsClient({ url: server.url, WebSocket: WebSocket as any, minDelayMs: 60000, maxDelayMs: 60000, window: target as any });
    const events = client;
    events.subscribe('job:4', () => undefined);
    await until(() => events.state === 'open', 'the first connection');
    const port = (server.wss.address() as AddressInfo).port;

    server.dropAll();
    await until(() => events.state === 'reconnecting', 'the loss');
    // the next attempt is a minute away; a click does not wait for it
    events.reconnectNow();
    await until(() => events.state === 'open', 'the reconnection on request', 2000);

    await server.close();
    await until(() => events.state === 'reconnecting', 'the second loss');
    server = new StudioServer(port);
    await new Promise(resolve => server.wss.once('listening', resolve));
    target.dispatchEvent(new Event('online'));
    await until(() => events.state === 'open', 'the reconnection when online', 2000);
  });

  test('a peer that stops answering is given up on and reconnected', async () => {
    client = new EventsClient({ url: server.url, WebSocket: WebSocket as any, minDelayMs: 20, maxDelayMs: 50, pingIntervalMs: 50 });
    const events = client;
    const seen: number[] = [];
    events.subscribe('job:5', e => seen.push(e.seq));
    await until(() => events.lastSeq('job:5') === 0, 'the ack');
    server.silence(); // no pong, no close: only the heartbeat can tell
    await until(() => server.connections === 2, 'a second connection');
    await until(() => events.state === 'open' && server.received.filter(m => m.op === 'subscribe').length === 2, 'the resubscription');
    await until(() => events.lastSeq('job:5') === 0 && server.subscribers('job:5') >= 1, 'its ack');
    server.publish('job:5', 'status', {});
    await until(() => seen.length === 1, 'an event on the new connection');
    expect(server.received.filter(m => m.op === 'subscribe')).toEqual([
      { op: 'subscribe', topic: 'job:5' },
      { op: 'subscribe', topic: 'job:5', since: 0 }
    ]);
  });

  test('history pruned past since: the listeners are told to reload, then get what is left', async () => {
    const seen: StudioEvent[] = [];
    const events = connect();
    events.subscribe('user:alice', e => seen.push(e));
    await until(() => events.lastSeq('user:alice') === 0, 'the ack');
    server.publish('user:alice', 'job', { id: 'a' });
    await until(() => seen.length === 1, 'the first event');

    server.dropAll();
    await until(() => events.state === 'reconnecting', 'the drop');
    for (const id of ['b', 'c', 'd']) {
      server.publish('user:alice', 'job', { id });
    }
    server.prunedThrough.set('user:alice', 3); // b and c are gone
    await until(() => seen.length === 3, 'the resync and the event left');
    expect(server.received).toContainEqual({ op: 'subscribe', topic: 'user:alice', since: 1 });
    expect(seen[1]).toMatchObject({ topic: 'user:alice', type: 'resync', data: { reason: 'pruned' } });
    expect(seen[2]).toMatchObject({ seq: 4, type: 'job', data: { id: 'd' } });
  });

  test('a server on a fresh database: the topic restarts from its new head and listeners reload', async () => {
    const seen: StudioEvent[] = [];
    const events = connect();
    events.subscribe('user:alice', e => seen.push(e));
    await until(() => events.lastSeq('user:alice') === 0, 'the ack');
    for (const id of ['a', 'b', 'c']) {
      server.publish('user:alice', 'job', { id });
    }
    await until(() => seen.length === 3, 'three events');

    // restarted with its history lost: its head (1) is behind the seq we resume from (3)
    const port = (server.wss.address() as AddressInfo).port;
    await server.close();
    server = new StudioServer(port);
    await new Promise(resolve => server.wss.once('listening', resolve));
    server.publish('user:alice', 'job', { id: 'x' });
    await until(() => seen.length === 4, 'the resync');
    expect(seen[3]).toMatchObject({ topic: 'user:alice', type: 'resync', data: { reason: 'reset' } });
    expect(server.received.filter(m => m.op === 'subscribe')).toEqual([
      { op: 'subscribe', topic: 'user:alice', since: 3 },
      { op: 'subscribe', topic: 'user:alice' }
    ]);
    await until(() => events.lastSeq('user:alice') === 1, 'the new head');
    // and the new server's events are delivered, although their seqs were seen before
    server.publish('user:alice', 'job', { id: 'y' });
    await until(() => seen.length === 5, 'a live event after the reset');
    expect(seen[4]).toMatchObject({ seq: 2, data: { id: 'y' } });
  });
});
