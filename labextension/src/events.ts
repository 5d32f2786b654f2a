/**
 * The live events client: one WebSocket on `{baseUrl}aistudio/api/events` for the whole
 * sidebar, shared by every panel.
 *
 * Protocol (README "Live events"): send `{"op":"subscribe","topic":T,"since":SEQ}`; the server
 * acks `{"op":"subscribed","topic":T,"seq":HEAD}` and then sends `{"topic","seq","type","data"}`
 * with `seq` contiguous per topic. The socket drops (server restart, proxy timeout, close 1013
 * for a slow reader); we reconnect with exponential backoff and resubscribe every topic with
 * `since` = the last seq we handed out, so nothing is lost or delivered twice.
 *
 * When a resume cannot be exact the topic's listeners get a synthetic `resync` event
 * (`{"topic", "seq", "type": "resync", "data": {"reason"}}`), so a panel reloads its list rather
 * than show one that silently missed changes: `pruned` when the ack says history past `since`
 * was pruned (`pruned_through`), `reset` when the server refuses `since` as past the topic's
 * head (a server on a fresh database) and the topic restarts live from the new head.
 */
import type { StudioEvent } from './types';

/** The WebSocket constructor (the browser's, or `ws` in tests). */
export type WebSocketFactory = new (url: string) => WebSocket;

export interface IEventsOptions {
  /** Full URL of the events socket, `ws(s)://host/base/aistudio/api/events`. */
  url: string;
  WebSocket?: WebSocketFactory;
  /** First reconnect delay; doubles per failure up to maxDelayMs. */
  minDelayMs?: number;
  maxDelayMs?: number;
  pingIntervalMs?: number;
  /** Window-like target for `online` events (reconnect at once); the global window by default. */
  window?: Pick<Window, 'addEventListener' | 'removeEventListener'> | null;
}

/**
 * `connecting`: the first connection is being made; `open`: live; `reconnecting`: the
 * connection was lost (or never made) and attempts continue with backoff; `closed`: nothing is
 * listened to, or the client was disposed.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why a topic's listeners got a `resync` event: their view may have missed events. */
export type ResyncReason = 'pruned' | 'reset';

type Listener = (event: StudioEvent) => void;

interface ITopic {
  listeners: Set<Listener>;
  /** Last seq delivered (or the head the server acked); null until either. */
  seq: number | null;
  /** The `since` of the subscribe in flight, to tell a refused resume from other errors. */
  asked: number | null;
}

/** The events URL for ServerConnection settings (token appended as Lab does for kernels). */
export function eventsUrl(settings: { wsUrl: string; token?: string; appendToken?: boolean }): string {
  const base = settings.wsUrl.endsWith('/') ? settings.wsUrl : `${settings.wsUrl}/`;
  const url = `${base}aistudio/api/events`;
  return settings.token && settings.appendToken !== false
    ? `${url}?token=${encodeURIComponent(settings.token)}`
    : url;
}

export class EventsClient {
  private readonly _options: Required<Omit<IEventsOptions, 'WebSocket' | 'window'>> & { WebSocket: WebSocketFactory };
  private readonly _topics = new Map<string, ITopic>();
  private readonly _stateListeners = new Set<(state: ConnectionState) => void>();
  private readonly _reconnectListeners = new Set<() => void>();
  private readonly _window: IEventsOptions['window'];
  private _socket: WebSocket | null = null;
  private _state: ConnectionState = 'closed';
  private _attempt = 0;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _ping: ReturnType<typeof setInterval> | null = null;
  private _disposed = false;
  /** Whether a connection was ever open: a later loss is a reconnect, not a first connect. */
  private _wasOpen = false;
  private _disconnectedAt: Date | null = null;
  private _lastMessageAt = 0;
  private readonly _online = (): void => this.reconnectNow();

  constructor(options: IEventsOptions) {
    const ctor = options.WebSocket ?? (globalThis as any).WebSocket;
    if (!ctor) {
      throw new Error('No WebSocket implementation');
    }
    const { window: target, ...rest } = options;
    this._options = {
      minDelayMs: 500,
      // a restarted server is found within 10 s; the jitter spreads the tabs that find it
      maxDelayMs: 10000,
      pingIntervalMs: 30000,
      ...rest,
      WebSocket: ctor
    };
    this._window = target === undefined ? ((globalThis as any).window ?? null) : target;
    // the network came back: no need to wait out the backoff
    this._window?.addEventListener('online', this._online);
  }

  get state(): ConnectionState {
    return this._state;
  }

  /**
   * When the connection that was live was lost; null while live and before the first
   * connection. What the panels show was current at that time.
   */
  get disconnectedAt(): Date | null {
    return this._disconnectedAt;
  }

  /** The last seq seen on a topic (null before its first ack). */
  lastSeq(topic: string): number | null {
    return this._topics.get(topic)?.seq ?? null;
  }

  onState(listener: (state: ConnectionState) => void): () => void {
    this._stateListeners.add(listener);
    return () => this._stateListeners.delete(listener);
  }

  /** Called each time the socket is live again after it was lost (not on the first connect). */
  onReconnect(listener: () => void): () => void {
    this._reconnectListeners.add(listener);
    return () => this._reconnectListeners.delete(listener);
  }

  /** Try now instead of waiting out the backoff (a user's click, the network coming back). */
  reconnectNow(): void {
    if (this._disposed || this._socket || this._topics.size === 0) {
      return;
    }
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._attempt = 0;
    this._connect();
  }

  /**
   * Listen to a topic. `since` replays history after that seq; without it, live events only.
   * Returns the unsubscribe function.
   */
  subscribe(topic: string, onEvent: Listener, since?: number): () => void {
    let entry = this._topics.get(topic);
    if (!entry) {
      entry = { listeners: new Set(), seq: since ?? null, asked: null };
      this._topics.set(topic, entry);
      if (this._socket && this._socket.readyState === 1) {
        this._subscribe(this._socket, topic, entry);
      }
    }
    entry.listeners.add(onEvent);
    this._connect();
    return () => {
      const current = this._topics.get(topic);
      if (!current) {
        return;
      }
      current.listeners.delete(onEvent);
      if (current.listeners.size === 0) {
        this._topics.delete(topic);
        this._send({ op: 'unsubscribe', topic });
      }
    };
  }

  dispose(): void {
    this._disposed = true;
    this._window?.removeEventListener('online', this._online);
    this._clearTimers();
    this._topics.clear();
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
    this._setState('closed');
  }

  private _setState(state: ConnectionState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateListeners.forEach(listener => listener(state));
    }
  }

  private _subscribe(socket: WebSocket, topic: string, entry: ITopic): void {
    entry.asked = entry.seq;
    socket.send(JSON.stringify({ op: 'subscribe', topic, ...(entry.seq !== null ? { since: entry.seq } : {}) }));
  }

  private _send(message: object): void {
    if (this._socket && this._socket.readyState === 1) {
      this._socket.send(JSON.stringify(message));
    }
    // not open: subscriptions are (re)sent from _topics when the socket opens
  }

  private _clearTimers(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._ping !== null) {
      clearInterval(this._ping);
      this._ping = null;
    }
  }

  private _connect(): void {
    if (this._disposed || this._socket || this._timer !== null) {
      return;
    }
    // while reconnecting the state stays `reconnecting` across attempts: no flicker
    if (this._state !== 'reconnecting') {
      this._setState('connecting');
    }
    let socket: WebSocket;
    try {
      socket = new this._options.WebSocket(this._options.url);
    } catch (error) {
      // a malformed URL or a refused scheme throws instead of closing: retry like a close
      console.warn('AI Studio events: cannot open the socket', error);
      this._lost();
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      const reconnected = this._wasOpen;
      this._attempt = 0;
      this._wasOpen = true;
      this._disconnectedAt = null;
      this._lastMessageAt = Date.now();
      for (const [topic, entry] of this._topics) {
        this._subscribe(socket, topic, entry);
      }
      this._ping = setInterval(() => this._heartbeat(socket), this._options.pingIntervalMs);
      this._setState('open');
      if (reconnected) {
        this._reconnectListeners.forEach(listener => listener());
      }
    };
    socket.onmessage = (message: MessageEvent) => {
      this._lastMessageAt = Date.now();
      this._receive(message.data);
    };
    socket.onerror = () => {
      // onclose follows and schedules the reconnect
    };
    socket.onclose = () => {
      if (this._socket === socket) {
        this._lost();
      }
    };
  }

  /** Ping, and give up on a socket that answered nothing for two intervals (a dead peer
   * whose TCP connection never closed: a suspended laptop, a dropped NAT entry). */
  private _heartbeat(socket: WebSocket): void {
    if (Date.now() - this._lastMessageAt > 2 * this._options.pingIntervalMs) {
      socket.onclose = null;
      socket.close();
      this._lost();
      return;
    }
    this._send({ op: 'ping' });
  }

  /** The socket is gone (closed, failed to open, or given up on): retry with backoff. */
  private _lost(): void {
    this._socket = null;
    this._clearTimers();
    if (this._disposed) {
      return;
    }
    if (this._state === 'open') {
      this._disconnectedAt = new Date();
    }
    if (this._topics.size > 0) {
      this._setState('reconnecting');
      this._scheduleReconnect();
    } else {
      this._setState('closed');
    }
  }

  private _scheduleReconnect(): void {
    const { minDelayMs, maxDelayMs } = this._options;
    const delay = Math.min(maxDelayMs, minDelayMs * 2 ** this._attempt);
    this._attempt += 1;
    // jitter, so every tab of a restarted server does not reconnect in the same millisecond
    const jittered = delay / 2 + Math.random() * (delay / 2);
    this._timer = setTimeout(() => {
      this._timer = null;
      this._connect();
    }, jittered);
  }

  private _receive(raw: unknown): void {
    let message: any;
    try {
      message = JSON.parse(typeof raw === 'string' ? raw : String(raw));
    } catch {
      return;
    }
    if (!message || typeof message !== 'object') {
      return;
    }
    if (message.op === 'subscribed') {
      const entry = this._topics.get(message.topic);
      if (!entry) {
        return;
      }
      // the head is where "live" starts when we asked for no history
      if (entry.seq === null && typeof message.seq === 'number') {
        entry.seq = message.seq;
      }
      if (typeof message.pruned_through === 'number') {
        // events we never saw are gone: what the listeners built from them may be wrong
        this._resync(message.topic, entry, 'pruned');
      }
      return;
    }
    if (message.op === 'error') {
      const entry = typeof message.topic === 'string' ? this._topics.get(message.topic) : undefined;
      // `since` past the head: this server's history is not the one we resumed from
      if (entry && message.error?.code === 'conflict' && entry.asked !== null && this._socket) {
        entry.seq = null;
        this._subscribe(this._socket, message.topic, entry);
        this._resync(message.topic, entry, 'reset');
      }
      return;
    }
    if (message.op) {
      return; // pong, unsubscribed: nothing to deliver
    }
    const entry = this._topics.get(message.topic);
    if (!entry || typeof message.seq !== 'number') {
      return;
    }
    if (entry.seq !== null && message.seq <= entry.seq) {
      return; // already delivered before a reconnect
    }
    entry.seq = message.seq;
    this._deliver(entry, message as StudioEvent);
  }

  private _resync(topic: string, entry: ITopic, reason: ResyncReason): void {
    this._deliver(entry, { topic, seq: entry.seq ?? 0, type: 'resync', data: { reason } });
  }

  private _deliver(entry: ITopic, event: StudioEvent): void {
    for (const listener of Array.from(entry.listeners)) {
      try {
        listener(event);
      } catch (error) {
        console.error('AI Studio events listener failed', error);
      }
    }
  }
}
