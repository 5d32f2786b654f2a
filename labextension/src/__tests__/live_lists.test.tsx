/**
 * @jest-environment jsdom
 *
 * Live lists: the user-topic hooks (one `user:<me>` subscription, made before listing; bursts
 * coalesced into one reload) and the Models, Deployments and Datasets panels that reload or patch
 * on `model`, `deployment` and `dataset` events, the Datasets panel without a topic per row.
 */
import React from 'react';
import { act } from 'react';
import { createRoot } from 'react-dom/client';

import { DatasetsPanel } from '../components/DatasetsPanel';
import { DeploymentsPanel } from '../components/DeploymentsPanel';
import { ModelsPanel } from '../components/ModelsPanel';
import { useUserChanges, useUserEvents } from '../hooks';
import { DEFAULT_SETTINGS, IStudio } from '../studio';
import type { StudioEvent } from '../types';
import { byTestId, domFixture, flush } from './dom';

/** A studio whose events client records subscriptions (several listeners per topic, as the real one). */
function fakeStudio(api: Record<string, jest.Mock>) {
  const topics = new Map<string, Set<(event: StudioEvent) => void>>();
  const subscribe = jest.fn((topic: string, listener: (event: StudioEvent) => void) => {
    const listeners = topics.get(topic) ?? new Set();
    listeners.add(listener);
    topics.set(topic, listeners);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) {
        topics.delete(topic);
      }
    };
  });
  const studio = {
    api: { me: jest.fn().mockResolvedValue({ username: 'alice' }), ...api },
    events: { subscribe },
    settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 },
    insertSnippet: () => false
  } as unknown as IStudio;
  let seq = 0;
  const emit = (topic: string, type: string, data: unknown): void => {
    seq += 1;
    act(() => (topics.get(topic) ?? new Set()).forEach(listener => listener({ topic, seq, type, data })));
  };
  return { studio, emit, topics, subscribe };
}

const dom = domFixture();

afterEach(() => {
  jest.useRealTimers();
});

/** Waits (real time) until `check` holds; the debounced reloads take a few hundred ms. */
async function until(check: () => boolean, timeout = 3000): Promise<void> {
  const end = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > end) {
      throw new Error('condition not met in time');
    }
    await flush(20);
  }
}

describe('useUserEvents', () => {
  function Listener(props: { studio: IStudio; types: string[]; seen: StudioEvent[] }): JSX.Element {
    const user = useUserEvents(props.studio, props.types, event => props.seen.push(event));
    return <span data-testid="user">{user ?? 'unknown'}</span>;
  }

  test('subscribes to user:<me> once /me answers and hands over only the asked types', async () => {
    const { studio, emit, topics } = fakeStudio({});
    const seen: StudioEvent[] = [];
    act(() => dom.root.render(<Listener studio={studio} types={['model', 'dataset']} seen={seen} />));
    await flush();
    expect(byTestId('user').textContent).toBe('alice');
    expect(Array.from(topics.keys())).toEqual(['user:alice']);
    emit('user:alice', 'model', { action: 'created', id: 'm1' });
    emit('user:alice', 'job', { id: 'j1', state: 'running' });
    emit('user:alice', 'dataset', { action: 'deleted', id: 'ds1' });
    expect(seen.map(e => [e.type, e.data.id])).toEqual([
      ['model', 'm1'],
      ['dataset', 'ds1']
    ]);
    act(() => dom.root.unmount());
    dom.root = createRoot(dom.container);
    expect(topics.size).toBe(0);
  });

  test('/me is asked once for every panel of one client, and a failing /me only means no live events', async () => {
    const { studio, topics } = fakeStudio({});
    const seen: StudioEvent[] = [];
    act(() =>
      dom.root.render(
        <div>
          <Listener studio={studio} types={['model']} seen={seen} />
          <Listener studio={studio} types={['deployment']} seen={seen} />
        </div>
      )
    );
    await flush();
    expect(studio.api.me).toHaveBeenCalledTimes(1);
    expect(topics.get('user:alice')?.size).toBe(2);

    const failing = fakeStudio({ me: jest.fn().mockRejectedValue(new Error('503')) });
    act(() => dom.root.render(<Listener studio={failing.studio} types={['model']} seen={seen} />));
    await flush();
    expect(byTestId('user').textContent).toBe('unknown');
    expect(failing.topics.size).toBe(0);
  });
});

describe('useUserChanges', () => {
  function Counter(props: { studio: IStudio; renders: number[] }): JSX.Element {
    const changes = useUserChanges(props.studio, ['deployment'], { delayMs: 50, accept: e => e.data?.action !== 'state' });
    props.renders.push(changes);
    return <span data-testid="changes">{changes}</span>;
  }

  test('a burst of events is one change; events the filter refuses are none', async () => {
    const { studio, emit } = fakeStudio({});
    const renders: number[] = [];
    act(() => dom.root.render(<Counter studio={studio} renders={renders} />));
    await flush();
    // the first panel subscribes only after /me: that late start counts as a change
    expect(byTestId('changes').textContent).toBe('1');
    for (let i = 0; i < 5; i++) {
      emit('user:alice', 'deployment', { action: 'updated', id: `d${i}` });
    }
    emit('user:alice', 'deployment', { action: 'state', id: 'd0', state: 'ready' });
    await flush(120);
    expect(byTestId('changes').textContent).toBe('2');
    emit('user:alice', 'deployment', { action: 'state', id: 'd0', state: 'loading' });
    await flush(120);
    expect(byTestId('changes').textContent).toBe('2');
  });

  test('a panel mounted once the user is known subscribes at once, with no extra reload', async () => {
    const { studio, subscribe } = fakeStudio({});
    const renders: number[] = [];
    act(() => dom.root.render(<Counter studio={studio} renders={renders} />));
    await flush();
    act(() => dom.root.unmount());
    dom.root = createRoot(dom.container);
    subscribe.mockClear();
    const again: number[] = [];
    act(() => dom.root.render(<Counter studio={studio} renders={again} />));
    // subscribed during the mount's effects, before any answer could arrive
    expect(subscribe).toHaveBeenCalledWith('user:alice', expect.any(Function));
    await flush(120);
    expect(byTestId('changes').textContent).toBe('0');
  });
});

const DEPLOYMENT = {
  id: 'd1',
  name: 'iris-v1',
  model_id: 'm1',
  model_version: 1,
  replicas: 1,
  state: 'pending',
  status_message: null,
  desired_state: 'running',
  ready_replicas: 0,
  replica_status: [],
  input_schema: null
};

test('Deployments: a deployment created elsewhere appears, a deleted one goes, without the timer', async () => {
  const api = {
    deployments: jest
      .fn()
      .mockResolvedValueOnce([])
      .mockResolvedValueOnce([])
      .mockResolvedValueOnce([DEPLOYMENT])
      .mockResolvedValue([])
  };
  const { studio, emit } = fakeStudio(api);
  act(() => dom.root.render(<DeploymentsPanel studio={studio} />));
  await until(() => api.deployments.mock.calls.length === 2);
  expect(byTestId('ais-deployments-empty')).not.toBeNull();

  emit('user:alice', 'deployment', { action: 'created', id: 'd1', record: DEPLOYMENT });
  await until(() => dom.container.querySelector('[data-testid="ais-deployment-d1"]') !== null);
  // state changes are followed by the row itself: no reload for them
  emit('user:alice', 'deployment', { action: 'state', id: 'd1', state: 'loading', ready_replicas: 0, replicas: 1 });
  await flush(400);
  expect(api.deployments).toHaveBeenCalledTimes(3);

  emit('user:alice', 'deployment', { action: 'deleted', id: 'd1' });
  await until(() => dom.container.querySelector('[data-testid="ais-deployments-empty"]') !== null);
  expect(api.deployments).toHaveBeenCalledTimes(4);
});

test('Models: a registered version reloads the list and the open versions', async () => {
  const model = { id: 'm1', name: 'iris', task: 'classification', latest_version: 1, updated_at: '2026-01-01T00:00:00Z' };
  const api = {
    models: jest.fn().mockResolvedValue([model]),
    modelVersions: jest.fn().mockResolvedValue([{ id: 'v1', model_id: 'm1', version: 1, stage: 'none', metrics: {} }])
  };
  const { studio, emit } = fakeStudio(api);
  act(() => dom.root.render(<ModelsPanel studio={studio} />));
  await until(() => dom.container.querySelector('[data-testid="ais-model-m1"]') !== null);
  act(() => byTestId('ais-model-versions-toggle').click());
  await until(() => dom.container.querySelector('[data-testid="ais-model-version-1"]') !== null);

  api.models.mockResolvedValue([{ ...model, latest_version: 2, updated_at: '2026-01-02T00:00:00Z' }]);
  api.modelVersions.mockResolvedValue([
    { id: 'v2', model_id: 'm1', version: 2, stage: 'none', metrics: { acc: 0.9 } },
    { id: 'v1', model_id: 'm1', version: 1, stage: 'none', metrics: {} }
  ]);
  emit('user:alice', 'model', { action: 'version', id: 'm1', version: { id: 'v2', version: 2, stage: 'none' } });
  await until(() => dom.container.querySelector('[data-testid="ais-model-version-2"]') !== null);

  // a stage change moves the model's updated_at: the open versions show it
  api.models.mockResolvedValue([{ ...model, latest_version: 2, updated_at: '2026-01-03T00:00:00Z' }]);
  api.modelVersions.mockResolvedValue([
    { id: 'v2', model_id: 'm1', version: 2, stage: 'production', metrics: { acc: 0.9 } },
    { id: 'v1', model_id: 'm1', version: 1, stage: 'none', metrics: {} }
  ]);
  emit('user:alice', 'model', { action: 'stage', id: 'm1', version: { id: 'v2', version: 2, stage: 'production' }, archived: [] });
  await until(() => byTestId('ais-model-version-stage', byTestId('ais-model-version-2')).textContent === 'production');
});

test('Datasets: one user:<me> subscription for every row; validation patches the row, a new dataset reloads the list', async () => {
  const datasets = Array.from({ length: 30 }, (_, i) => ({
    id: `ds${i}`,
    owner: 'alice',
    name: `data ${i}`,
    description: '',
    tags: [],
    latest_version: 1,
    size_bytes: 10,
    visibility: 'private',
    created_at: '',
    updated_at: ''
  }));
  const api = {
    datasets: jest.fn().mockResolvedValue({ items: datasets, next_cursor: null }),
    validations: jest.fn().mockResolvedValue({ items: [], next_cursor: null })
  };
  const { studio, emit, subscribe } = fakeStudio(api);
  act(() => dom.root.render(<DatasetsPanel studio={studio} />));
  await until(() => dom.container.querySelectorAll('[data-testid^="ais-dataset-ds"]').length === 30);
  await flush(50);
  // no topic per row: a list of thousands stays one subscription
  const topics = new Set(subscribe.mock.calls.map(call => call[0]));
  expect(Array.from(topics)).toEqual(['user:alice']);
  const row = byTestId('ais-dataset-ds7');
  expect(byTestId('ais-dataset-validation', row).textContent).toBe('not validated');
  const asked = api.validations.mock.calls.length;
  const listed = api.datasets.mock.calls.length;

  const report = { id: 'val1', dataset_id: 'ds7', version: 1, state: 'pending', passed: null, error: null, job_id: 'j1' };
  emit('user:alice', 'dataset', { action: 'validation', id: 'ds7', validation: report });
  expect(byTestId('ais-dataset-validation', row).textContent).toBe('validating…');
  emit('user:alice', 'dataset', { action: 'validation', id: 'ds7', validation: { ...report, state: 'failed', passed: false } });
  expect(byTestId('ais-dataset-validation', row).textContent).toBe('invalid');
  expect(byTestId('ais-dataset-validation', byTestId('ais-dataset-ds8')).textContent).toBe('not validated');
  await flush(400);
  // patched from the event alone: neither the list nor the reports were asked for again
  expect(api.validations.mock.calls.length).toBe(asked);
  expect(api.datasets.mock.calls.length).toBe(listed);

  const added = { ...datasets[0], id: 'dsNew', name: 'new <b>one</b>' };
  api.datasets.mockResolvedValue({ items: [added, ...datasets], next_cursor: null });
  emit('user:alice', 'dataset', { action: 'created', id: 'dsNew', record: added });
  await until(() => dom.container.querySelector('[data-testid="ais-dataset-dsNew"]') !== null);
  expect(byTestId('ais-dataset-dsNew').textContent).toContain('new <b>one</b>');
  expect(dom.container.querySelector('b')).toBeNull();
  // the patched row kept its live validation through the reload
  expect(byTestId('ais-dataset-validation', byTestId('ais-dataset-ds7')).textContent).toBe('invalid');
});
