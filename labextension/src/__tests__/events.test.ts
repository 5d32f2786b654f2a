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
        const topics = this.subs.get(socket)!;
        if (msg.op === 'subscribe') {
          const events = this.history.get(msg.topic) ?? [];
          const head = events.length ? events[events.length - 1].seq : 0;
          socket.send(JSON.stringify({ op: 'subscribed', topic: msg.topic, seq: head }));
          if (typeof msg.since === 'number') {
            for (const event of events.filter(e => e.seq > msg.since)) {
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
  await until(() => events.state === 'closed' || events.state === 'connecting', 'the drop');
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
