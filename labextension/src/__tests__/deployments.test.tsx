/**
 * @jest-environment jsdom
 *
 * The Deployments panel: the predict example built from an input schema, a row that follows its
 * `deployment:<id>` events, Stop, and the test-predict form showing predictions or the API's
 * message (as text).
 */
import React from 'react';
import { act } from 'react';

import { ApiError } from '../api';
import { DeploymentsPanel } from '../components/DeploymentsPanel';
import { predictExample } from '../predict';
import { DEFAULT_SETTINGS, IStudio } from '../studio';
import type { Deployment, StudioEvent } from '../types';
import { byTestId, domFixture, flush } from './dom';

describe('predictExample', () => {
  test('records: one record with zeros for numbers, "" for strings, false for booleans', () => {
    const schema = {
      kind: 'records' as const,
      features: [
        { name: 'a', dtype: 'float64' },
        { name: 'n', dtype: 'int32' },
        { name: 'city', dtype: 'string' },
        { name: 'flag', dtype: 'bool' }
      ]
    };
    expect(predictExample(schema)).toEqual({ records: [{ a: 0, n: 0, city: '', flag: false }] });
  });

  test('tensors: one row of zeros of the inner shape', () => {
    expect(predictExample({ kind: 'tensor', shape: [null, 4], dtype: 'float32' })).toEqual({ inputs: [[0, 0, 0, 0]] });
    expect(predictExample({ kind: 'tensor', shape: [null, 2, 3] })).toEqual({
      inputs: [
        [
          [0, 0, 0],
          [0, 0, 0]
        ]
      ]
    });
  });

  test('no schema: an empty record to fill in', () => {
    expect(predictExample(null)).toEqual({ records: [{}] });
  });
});

const DEPLOYMENT: Deployment = {
  id: 'd1',
  name: 'iris <b>api</b>',
  model_id: 'm1',
  model_version: 2,
  replicas: 2,
  state: 'loading',
  status_message: null,
  desired_state: 'running',
  ready_replicas: 0,
  replica_status: [],
  input_schema: { kind: 'records', features: [{ name: 'a', dtype: 'float64' }, { name: 'species', dtype: 'string' }] }
};

function fakeStudio(api: Record<string, jest.Mock>) {
  const listeners = new Map<string, (event: StudioEvent) => void>();
  const studio = {
    api,
    events: {
      subscribe: jest.fn((topic: string, listener: (event: StudioEvent) => void) => {
        listeners.set(topic, listener);
        return () => listeners.delete(topic);
      })
    },
    settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 },
    insertSnippet: () => false
  } as unknown as IStudio;
  let seq = 0;
  const emit = (topic: string, type: string, data: unknown): void => {
    seq += 1;
    act(() => listeners.get(topic)!({ topic, seq, type, data }));
  };
  return { studio, emit, listeners };
}

const dom = domFixture();

function setValue(element: HTMLTextAreaElement, value: string): void {
  // React tracks the value itself: set it through the native setter so onChange fires
  const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value')!.set!;
  act(() => {
    setter.call(element, value);
    element.dispatchEvent(new Event('input', { bubbles: true }));
  });
}

test('a row follows its status events and stops from its button', async () => {
  const api = {
    deployments: jest.fn().mockResolvedValue([DEPLOYMENT]),
    deploymentAction: jest.fn().mockResolvedValue({ ...DEPLOYMENT, state: 'ready', ready_replicas: 2, desired_state: 'stopped' })
  };
  const { studio, emit, listeners } = fakeStudio(api);
  act(() => dom.root.render(<DeploymentsPanel studio={studio} />));
  await flush();
  const row = byTestId('ais-deployment-d1');
  expect(row.getAttribute('data-state')).toBe('loading');
  // the name is text, never markup
  expect(row.textContent).toContain('iris <b>api</b>');
  expect(dom.container.querySelector('b')).toBeNull();
  expect(byTestId('ais-deployment-replicas').textContent).toBe('0/2 ready');
  expect(listeners.has('deployment:d1')).toBe(true);

  emit('deployment:d1', 'status', { state: 'ready', message: null, ready_replicas: 2, replicas: 2, model_version: 2 });
  expect(row.getAttribute('data-state')).toBe('ready');
  expect(byTestId('ais-deployment-state').textContent).toBe('ready');
  expect(byTestId('ais-deployment-replicas').textContent).toBe('2/2 ready');

  // a replica that keeps failing says why, as text; once ready again the message goes
  emit('deployment:d1', 'replica', { index: 1, state: 'crashed', pid: null, restarts: 3, model_version: 2, last_error: 'CUDA <b>OOM</b>' });
  expect(byTestId('ais-deployment-replica-error').textContent).toBe('replica 1 (crashed, 3 restarts): CUDA <b>OOM</b>');
  expect(dom.container.querySelector('b')).toBeNull();
  emit('deployment:d1', 'replica', { index: 1, state: 'ready', pid: 42, restarts: 3, model_version: 2, last_error: 'CUDA <b>OOM</b>' });
  expect(dom.container.querySelector('[data-testid="ais-deployment-replica-error"]')).toBeNull();

  act(() => byTestId('ais-deployment-stop').click());
  await flush();
  expect(api.deploymentAction).toHaveBeenCalledWith('d1', 'stop');
  // asked to stop: the button offers Start at once; the state itself comes by event
  expect(dom.container.querySelector('[data-testid="ais-deployment-stop"]')).toBeNull();
  emit('deployment:d1', 'status', { state: 'stopped', message: 'stopped by alice', ready_replicas: 0, replicas: 2, model_version: 2 });
  expect(row.getAttribute('data-state')).toBe('stopped');
  expect(byTestId('ais-deployment-message').textContent).toBe('stopped by alice');
  expect(byTestId('ais-deployment-start')).not.toBeNull();
});

test('the test form sends the prefilled example and shows predictions, or the API message', async () => {
  const api = {
    deployments: jest.fn().mockResolvedValue([{ ...DEPLOYMENT, state: 'ready', ready_replicas: 2 }]),
    predict: jest
      .fn()
      .mockResolvedValueOnce({ predictions: ['setosa'], model_version: 2, deployment_id: 'd1' })
      .mockRejectedValueOnce(new ApiError({ status: 422, code: 'invalid', message: 'records[0].a: <i>not a number</i>' }))
  };
  const { studio } = fakeStudio(api);
  act(() => dom.root.render(<DeploymentsPanel studio={studio} />));
  await flush();
  act(() => byTestId('ais-deployment-test').click());
  const body = byTestId('ais-predict-body') as HTMLTextAreaElement;
  expect(JSON.parse(body.value)).toEqual({ records: [{ a: 0, species: '' }] });

  act(() => byTestId('ais-predict-send').click());
  await flush();
  expect(api.predict).toHaveBeenCalledWith('d1', { records: [{ a: 0, species: '' }] });
  expect(byTestId('ais-predict-result').textContent).toBe('["setosa"]');

  setValue(body, '{"records": [{"a": "x"}]}');
  act(() => byTestId('ais-predict-send').click());
  await flush();
  expect(api.predict).toHaveBeenLastCalledWith('d1', { records: [{ a: 'x' }] });
  expect(byTestId('ais-predict-error').textContent).toBe('records[0].a: <i>not a number</i>');
  expect(dom.container.querySelector('i')).toBeNull();
  expect(dom.container.querySelector('[data-testid="ais-predict-result"]')).toBeNull();

  // a body that is not JSON never reaches the server
  setValue(body, '{records');
  act(() => byTestId('ais-predict-send').click());
  await flush();
  expect(api.predict).toHaveBeenCalledTimes(2);
  expect(byTestId('ais-predict-error').textContent).toMatch(/^Not valid JSON/);
});
