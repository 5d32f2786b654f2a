/**
 * The live events client: one WebSocket on `{baseUrl}aistudio/api/events` for the whole
 * sidebar, shared by every panel.
 *
 * Protocol (README "Live events"): send `{"op":"subscribe","topic":T,"since":SEQ}`; the server
 * acks `{"op":"subscribed","topic":T,"seq":HEAD}` and then sends `{"topic","seq","type","data"}`
 * with `seq` contiguous per topic. The socket drops (server restart, proxy timeout, close 1013
 * for a slow reader); we reconnect with exponential backoff and resubscribe every topic with
 * `since` = the last seq we handed out, so nothing is lost or delivered twice.
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
}

export type ConnectionState = 'connecting' | 'open' | 'closed';

type Listener = (event: StudioEvent) => void;

interface ITopic {
  listeners: Set<Listener>;
  /** Last seq delivered (or the head the server acked); null until either. */
  seq: number | null;
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
  private readonly _options: Required<Omit<IEventsOptions, 'WebSocket'>> & { WebSocket: WebSocketFactory };
  private readonly _topics = new Map<string, ITopic>();
  private readonly _stateListeners = new Set<(state: ConnectionState) => void>();
  private _socket: WebSocket | null = null;
  private _state: ConnectionState = 'closed';
  private _attempt = 0;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _ping: ReturnType<typeof setInterval> | null = null;
  private _disposed = false;

  constructor(options: IEventsOptions) {
    const ctor = options.WebSocket ?? (globalThis as any).WebSocket;
    if (!ctor) {
      throw new Error('No WebSocket implementation');
    }
    this._options = {
      minDelayMs: 500,
      maxDelayMs: 30000,
      pingIntervalMs: 30000,
      ...options,
      WebSocket: ctor
    };
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The last seq seen on a topic (null before its first ack). */
  lastSeq(topic: string): number | null {
    return this._topics.get(topic)?.seq ?? null;
  }

  onState(listener: (state: ConnectionState) => void): () => void {
    this._stateListeners.add(listener);
    return () => this._stateListeners.delete(listener);
  }

  /**
   * Listen to a topic. `since` replays history after that seq; without it, live events only.
   * Returns the unsubscribe function.
   */
  subscribe(topic: string, onEvent: Listener, since?: number): () => void {
    let entry = this._topics.get(topic);
    if (!entry) {
      entry = { listeners: new Set(), seq: since ?? null };
      this._topics.set(topic, entry);
      this._send({ op: 'subscribe', topic, ...(entry.seq !== null ? { since: entry.seq } : {}) });
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
    this._setState('connecting');
    const socket = new this._options.WebSocket(this._options.url);
    this._socket = socket;
    socket.onopen = () => {
      this._attempt = 0;
      this._setState('open');
      for (const [topic, entry] of this._topics) {
        socket.send(JSON.stringify({ op: 'subscribe', topic, ...(entry.seq !== null ? { since: entry.seq } : {}) }));
      }
      this._ping = setInterval(() => this._send({ op: 'ping' }), this._options.pingIntervalMs);
    };
    socket.onmessage = (message: MessageEvent) => this._receive(message.data);
    socket.onerror = () => {
      // onclose follows and schedules the reconnect
    };
    socket.onclose = () => {
      this._socket = null;
      this._clearTimers();
      if (this._disposed) {
        return;
      }
      this._setState('closed');
      if (this._topics.size > 0) {
        this._scheduleReconnect();
      }
    };
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
      // the head is where "live" starts when we asked for no history
      if (entry && entry.seq === null && typeof message.seq === 'number') {
        entry.seq = message.seq;
      }
      return;
    }
    if (message.op) {
      return; // pong, unsubscribed, error: nothing to deliver
    }
    const entry = this._topics.get(message.topic);
    if (!entry || typeof message.seq !== 'number') {
      return;
    }
    if (entry.seq !== null && message.seq <= entry.seq) {
      return; // already delivered before a reconnect
    }
    entry.seq = message.seq;
    for (const listener of Array.from(entry.listeners)) {
      try {
        listener(message as StudioEvent);
      } catch (error) {
        console.error('AI Studio events listener failed', error);
      }
    }
  }
}
