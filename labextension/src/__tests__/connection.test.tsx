/**
 * @jest-environment jsdom
 *
 * What the sidebar shows of the events connection: the header indicator (live / reconnecting… /
 * offline, a click retrying at once), the "offline — showing data from HH:MM" note on open
 * panels, a panel whose load failed for the outage loading again when the socket is back, and
 * the Jobs panel listing again when the events client says it missed events for good.
 */
import React from 'react';
import { act } from 'react';

import { ApiError } from '../api';
import { clockTime, ConnectionIndicator, StaleNote } from '../components/Connection';
import { ErrorBoundary } from '../components/ErrorBoundary';
import { JobsPanel } from '../components/JobsPanel';
import type { ConnectionState } from '../events';
import { useLoad, useUserChanges } from '../hooks';
import { DEFAULT_SETTINGS, IStudio } from '../studio';
import type { Job, StudioEvent } from '../types';
import { byTestId, domFixture, flush, queryTestId } from './dom';

/** The events client's connection surface, driven by the test. */
class FakeEvents {
  state: ConnectionState = 'connecting';
  disconnectedAt: Date | null = null;
  reconnectNow = jest.fn();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  readonly topics = new Map<string, Set<(event: StudioEvent) => void>>();

  onState(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  subscribe(topic: string, listener: (event: StudioEvent) => void): () => void {
    const set = this.topics.get(topic) ?? new Set();
    set.add(listener);
    this.topics.set(topic, set);
    return () => set.delete(listener);
  }

  emit(topic: string, type: string, data: unknown): void {
    this.topics.get(topic)?.forEach(listener => listener({ topic, seq: 0, type, data }));
  }

  set(state: ConnectionState, disconnectedAt: Date | null = this.disconnectedAt): void {
    const reconnected = state === 'open' && this.state === 'reconnecting';
    this.state = state;
    this.disconnectedAt = disconnectedAt;
    this.stateListeners.forEach(listener => listener(state));
    if (reconnected) {
      this.reconnectListeners.forEach(listener => listener());
    }
  }
}

const dom = domFixture();
let events: FakeEvents;

beforeEach(() => {
  events = new FakeEvents();
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  jest.restoreAllMocks();
});

test('the indicator follows the connection, and a click while down retries at once', () => {
  act(() => dom.root.render(<ConnectionIndicator events={events as any} />));
  expect(byTestId('ais-connection').textContent).toBe('connecting…');
  act(() => events.set('open'));
  expect(byTestId('ais-connection').textContent).toBe('live');
  expect(byTestId('ais-connection').tagName).toBe('SPAN');

  const lost = new Date(2026, 0, 2, 14, 5);
  act(() => events.set('reconnecting', lost));
  const indicator = byTestId('ais-connection');
  expect(indicator.textContent).toBe('reconnecting…');
  expect(indicator.getAttribute('data-state')).toBe('reconnecting');
  expect(indicator.title).toContain(clockTime(lost));
  act(() => indicator.click());
  expect(events.reconnectNow).toHaveBeenCalledTimes(1);

  act(() => events.set('closed'));
  expect(byTestId('ais-connection').textContent).toBe('offline');
  act(() => events.set('open', null));
  expect(byTestId('ais-connection').textContent).toBe('live');
});

test('an open panel says its data is from before the outage, and stops saying so when live', () => {
  act(() => dom.root.render(<StaleNote events={events as any} name="jobs" />));
  // never connected yet: nothing was shown live, so nothing is stale
  expect(queryTestId('ais-stale-jobs')).toBeNull();
  act(() => events.set('open'));
  expect(queryTestId('ais-stale-jobs')).toBeNull();
  const lost = new Date(2026, 0, 2, 9, 41);
  act(() => events.set('reconnecting', lost));
  expect(byTestId('ais-stale-jobs').textContent).toBe(`offline — showing data from ${clockTime(lost)}`);
  act(() => events.set('open', null));
  expect(queryTestId('ais-stale-jobs')).toBeNull();
});

function Loader(props: { load: () => Promise<string> }): JSX.Element {
  const { data } = useLoad(props.load, []);
  return <span data-testid="loaded">{data ?? 'loading'}</span>;
}

test('a load that failed for the outage loads again when the socket is back; a 4xx waits for Retry', async () => {
  const unreachable = new ApiError({ status: 0, code: 'network', message: 'Could not reach AI Studio: Failed to fetch' });
  const refused = new ApiError({ status: 422, code: 'invalid', message: 'q is too long' });
  const outage = jest.fn<Promise<string>, []>().mockRejectedValueOnce(unreachable).mockResolvedValue('back');
  const invalid = jest.fn<Promise<string>, []>().mockRejectedValue(refused);
  const nested = jest.fn<Promise<string>, []>().mockRejectedValueOnce(unreachable).mockResolvedValue('nested back');
  act(() =>
    dom.root.render(
      <div>
        <ErrorBoundary name="jobs" retryOn={retry => events.onReconnect(retry)}>
          <Loader load={outage} />
        </ErrorBoundary>
        <ErrorBoundary name="datasets" retryOn={retry => events.onReconnect(retry)}>
          <Loader load={invalid} />
        </ErrorBoundary>
        <ErrorBoundary name="models" retryOn={retry => events.onReconnect(retry)}>
          {/* a boundary a panel nests inside itself inherits the panel's retryOn */}
          <ErrorBoundary name="model-list">
            <Loader load={nested} />
          </ErrorBoundary>
        </ErrorBoundary>
      </div>
    )
  );
  await flush();
  expect(byTestId('ais-error-jobs').textContent).toContain('AI Studio is unreachable');
  expect(byTestId('ais-error-jobs').querySelector('[data-testid="ais-retry"]')).not.toBeNull();
  expect(queryTestId('ais-error-datasets')).not.toBeNull();
  expect(queryTestId('ais-error-model-list')).not.toBeNull();

  act(() => events.set('reconnecting', new Date()));
  act(() => events.set('open', null));
  await flush();
  expect(queryTestId('ais-error-jobs')).toBeNull();
  expect(dom.container.textContent).toContain('back');
  expect(outage).toHaveBeenCalledTimes(2);
  expect(queryTestId('ais-error-model-list')).toBeNull();
  expect(dom.container.textContent).toContain('nested back');
  // the server's refusal does not pass with the connection: it stays until the user acts
  expect(queryTestId('ais-error-datasets')).not.toBeNull();
  expect(invalid).toHaveBeenCalledTimes(1);
});

function job(id: string, state: Job['state'], updated: string): Job {
  return { id, name: id, kind: 'script', state, created_at: updated, updated_at: updated } as Job;
}

test('the Jobs panel lists again, from scratch, when its topic missed events for good', async () => {
  const pages = [
    { items: [job('j1', 'running', '2026-01-01T00:00:01Z'), job('gone', 'queued', '2026-01-01T00:00:02Z')] },
    { items: [job('j1', 'canceled', '2026-01-01T00:05:00Z'), job('j2', 'queued', '2026-01-01T00:05:01Z')] }
  ];
  const api = {
    me: jest.fn().mockResolvedValue({ username: 'alice' }),
    jobs: jest.fn().mockImplementation(() => Promise.resolve(pages.shift()))
  };
  const studio = { api, events, settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 }, insertSnippet: () => false } as unknown as IStudio;
  act(() => dom.root.render(<JobsPanel studio={studio} />));
  await flush();
  await flush();
  expect(byTestId('ais-job-j1').getAttribute('data-state')).toBe('running');
  expect(queryTestId('ais-job-gone')).not.toBeNull();
  expect(events.topics.get('user:alice')?.size).toBe(1);

  act(() => events.emit('user:alice', 'resync', { reason: 'reset' }));
  await flush();
  await flush();
  expect(api.jobs).toHaveBeenCalledTimes(2);
  expect(byTestId('ais-job-j1').getAttribute('data-state')).toBe('canceled');
  expect(queryTestId('ais-job-j2')).not.toBeNull();
  // a job the new listing does not have is not kept from the old one
  expect(queryTestId('ais-job-gone')).toBeNull();
});

test('a failed cancel shows why, with Retry doing the cancel again', async () => {
  const api = {
    me: jest.fn().mockResolvedValue({ username: 'alice' }),
    jobs: jest.fn().mockResolvedValue({ items: [job('j1', 'running', '2026-01-01T00:00:01Z')] }),
    cancelJob: jest
      .fn()
      .mockRejectedValueOnce(new ApiError({ status: 0, code: 'network', message: 'Could not reach AI Studio: Failed to fetch' }))
      .mockResolvedValueOnce(job('j1', 'canceled', '2026-01-01T00:01:00Z'))
  };
  const studio = { api, events, settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 }, insertSnippet: () => false } as unknown as IStudio;
  act(() => dom.root.render(<JobsPanel studio={studio} />));
  await flush();
  await flush();
  act(() => (byTestId('ais-job-j1').querySelector('[data-testid="ais-job-cancel"]') as HTMLElement).click());
  await flush();
  const error = byTestId('ais-job-action-error');
  expect(error.textContent).toContain('Could not reach AI Studio: Failed to fetch');
  act(() => (error.querySelector('[data-testid="ais-retry"]') as HTMLElement).click());
  await flush();
  expect(api.cancelJob).toHaveBeenCalledTimes(2);
  expect(queryTestId('ais-job-action-error')).toBeNull();
  expect(byTestId('ais-job-j1').getAttribute('data-state')).toBe('canceled');
});

function Changes(props: { studio: IStudio }): JSX.Element {
  // an `accept` that takes nothing: only a resync can change the number
  const generation = useUserChanges(props.studio, ['model'], { delayMs: 0, accept: () => false });
  return <span data-testid="generation">{generation}</span>;
}

test('a list kept current by the user topic reloads when that topic missed events for good', async () => {
  const api = { me: jest.fn().mockResolvedValue({ username: 'bob' }) };
  const studio = { api, events, settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 }, insertSnippet: () => false } as unknown as IStudio;
  act(() => dom.root.render(<Changes studio={studio} />));
  await flush();
  await flush();
  expect(events.topics.get('user:bob')?.size).toBe(1);
  const before = Number(byTestId('generation').textContent);
  act(() => events.emit('user:bob', 'model', { action: 'created', id: 'm1' }));
  await flush();
  expect(Number(byTestId('generation').textContent)).toBe(before);
  act(() => events.emit('user:bob', 'resync', { reason: 'pruned' }));
  await flush();
  expect(Number(byTestId('generation').textContent)).toBe(before + 1);
});
