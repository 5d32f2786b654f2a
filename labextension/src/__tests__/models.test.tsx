/**
 * @jest-environment jsdom
 *
 * The Models panel: versions with stage and key metrics, and Deploy on a version, whose new
 * deployment the Deployments panel lists at once.
 */
import React from 'react';
import { act } from 'react';

import { ApiError } from '../api';
import { DeploymentsPanel } from '../components/DeploymentsPanel';
import { deploymentName, keyMetrics, ModelsPanel } from '../components/ModelsPanel';
import { DEFAULT_SETTINGS, IStudio } from '../studio';
import { byTestId, domFixture, flush } from './dom';

test('keyMetrics: numbers only, at most three, four significant digits', () => {
  expect(keyMetrics({ acc: 0.912345, loss: 0.25, note: 'x', f1: 0.5, auc: 0.7 })).toBe('acc 0.9123 · loss 0.25 · f1 0.5');
  expect(keyMetrics({})).toBe('');
});

test('deploymentName stays within the API limit of 128', () => {
  expect(deploymentName('iris', 3)).toBe('iris-v3');
  expect(deploymentName('m'.repeat(128), 12).length).toBeLessThanOrEqual(128);
});

const dom = domFixture();

test('a version deploys from its button and the Deployments panel lists it', async () => {
  const deployment = { id: 'd9', name: 'iris-v2', model_id: 'm1', model_version: 2, replicas: 1, state: 'pending', status_message: null, desired_state: 'running', ready_replicas: 0, replica_status: [], input_schema: null };
  const api = {
    models: jest.fn().mockResolvedValue([{ id: 'm1', name: 'iris', task: 'classification', latest_version: 2 }]),
    modelVersions: jest.fn().mockResolvedValue([
      { id: 'v2', model_id: 'm1', version: 2, stage: 'production', metrics: { acc: 0.93 } },
      { id: 'v1', model_id: 'm1', version: 1, stage: 'none', metrics: {} }
    ]),
    deploy: jest
      .fn()
      .mockResolvedValueOnce(deployment)
      .mockRejectedValueOnce(new ApiError({ status: 429, code: 'quota_exceeded', message: 'At most 2 deployments on the free tier' })),
    deployments: jest.fn().mockResolvedValueOnce([]).mockResolvedValue([deployment])
  };
  const studio = {
    api,
    events: { subscribe: jest.fn(() => () => undefined) },
    settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 },
    insertSnippet: () => false
  } as unknown as IStudio;
  act(() =>
    dom.root.render(
      <div>
        <ModelsPanel studio={studio} />
        <DeploymentsPanel studio={studio} />
      </div>
    )
  );
  await flush();
  expect(byTestId('ais-deployments-empty')).not.toBeNull();
  const row = byTestId('ais-model-m1');
  act(() => byTestId('ais-model-versions-toggle', row).click());
  await flush();
  expect(api.modelVersions).toHaveBeenCalledWith('m1');
  const v2 = byTestId('ais-model-version-2');
  expect(byTestId('ais-model-version-stage', v2).textContent).toBe('production');
  expect(byTestId('ais-model-version-metrics', v2).textContent).toBe('acc 0.93');
  expect(byTestId('ais-model-version-metrics', byTestId('ais-model-version-1')).textContent).toBe('no metrics');

  act(() => byTestId('ais-model-deploy', v2).click());
  await flush();
  expect(api.deploy).toHaveBeenCalledWith({ name: 'iris-v2', model_id: 'm1', model_version: 2 });
  expect(byTestId('ais-model-deploy-notice', v2).textContent).toBe('Deploying as iris-v2');
  // the Deployments panel listed again without waiting for its refresh interval
  expect(byTestId('ais-deployment-d9')).not.toBeNull();

  act(() => byTestId('ais-model-deploy', v2).click());
  await flush();
  expect(byTestId('ais-model-deploy-error', v2).textContent).toBe('At most 2 deployments on the free tier');
});
