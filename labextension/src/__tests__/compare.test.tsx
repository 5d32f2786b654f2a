/**
 * @jest-environment jsdom
 *
 * Comparing model versions: the table's differing rows and best values, "only differences",
 * the Models panel's Compare on ticked versions, and one main-area tab per version set.
 */
import React from 'react';
import { act } from 'react';
import type { Widget } from '@lumino/widgets';

import { bestColumns, CompareTable, CompareView, compareKey, compareOpener, compareRows, lowerIsBetter } from '../components/CompareView';
import { ModelsPanel } from '../components/ModelsPanel';
import { DEFAULT_SETTINGS, IStudio } from '../studio';
import type { ModelCompare } from '../types';
import { byTestId, domFixture, flush } from './dom';

const DATA: ModelCompare = {
  model_id: 'mdl_1',
  versions: [
    { version: 1, stage: 'none', created_at: '2026-01-01T00:00:00Z', job_id: null },
    { version: 2, stage: 'production', created_at: '2026-01-02T00:00:00Z', job_id: 'job_2' }
  ],
  metrics: { acc: [0.81, 0.9], loss: [0.2, 0.35], f1: [0.5, 0.5] },
  hyperparameters: { lr: [0.01, 0.001], epochs: [10, 10] },
  lineage: { code_hash: ['abc', 'def'], dataset_id: ['ds_1', 'ds_1'] },
  differs: ['hyperparameters.lr', 'lineage.code_hash']
};

test('lowerIsBetter: losses and errors', () => {
  expect(['loss', 'val_loss', 'error_rate', 'MAE', 'mse', 'rmse'].map(lowerIsBetter)).toEqual([true, true, true, true, true, true]);
  expect(['acc', 'f1', 'auc'].map(lowerIsBetter)).toEqual([false, false, false]);
});

test('bestColumns: the best per direction, ties all, nothing when all equal or alone', () => {
  expect(bestColumns('acc', [0.8, 0.9, 0.9])).toEqual([1, 2]);
  expect(bestColumns('loss', [0.3, null, 0.1])).toEqual([2]);
  expect(bestColumns('acc', [0.5, 0.5])).toEqual([]);
  expect(bestColumns('acc', [0.5, null])).toEqual([]);
});

test('compareRows: metrics differ by value, the rest as the API says', () => {
  const rows = Object.fromEntries(compareRows(DATA).map(row => [`${row.section}.${row.key}`, row]));
  expect(Object.keys(rows)).toEqual([
    'metrics.acc',
    'metrics.f1',
    'metrics.loss',
    'hyperparameters.epochs',
    'hyperparameters.lr',
    'lineage.code_hash',
    'lineage.dataset_id'
  ]);
  expect(rows['metrics.acc'].differs).toBe(true);
  expect(rows['metrics.f1'].differs).toBe(false);
  expect(rows['hyperparameters.lr'].differs).toBe(true);
  expect(rows['hyperparameters.epochs'].differs).toBe(false);
  expect(rows['metrics.loss'].best).toEqual([0]);
});

const dom = domFixture();

function cells(row: HTMLElement): { text: string; best: boolean }[] {
  return Array.from(row.querySelectorAll('[data-testid="ais-compare-cell"]')).map(cell => ({
    text: cell.textContent ?? '',
    best: cell.getAttribute('data-best') === 'true'
  }));
}

test('the table marks differing rows and the best value of each metric', () => {
  act(() => dom.root.render(<CompareTable data={DATA} onlyDifferences={false} />));
  expect(byTestId('ais-compare-column-2').textContent).toContain('production');
  const acc = byTestId('ais-compare-row-metrics.acc');
  expect(acc.getAttribute('data-differs')).toBe('true');
  expect(cells(acc)).toEqual([
    { text: '0.81', best: false },
    { text: '0.9', best: true }
  ]);
  // lower is better for a loss
  expect(cells(byTestId('ais-compare-row-metrics.loss')).map(c => c.best)).toEqual([true, false]);
  // equal everywhere: neither differing nor anyone's best
  const f1 = byTestId('ais-compare-row-metrics.f1');
  expect(f1.getAttribute('data-differs')).toBe('false');
  expect(cells(f1).map(c => c.best)).toEqual([false, false]);
  expect(byTestId('ais-compare-row-hyperparameters.lr').getAttribute('data-differs')).toBe('true');
  expect(byTestId('ais-compare-row-hyperparameters.epochs').getAttribute('data-differs')).toBe('false');
  expect(cells(byTestId('ais-compare-row-lineage.code_hash')).map(c => c.text)).toEqual(['abc', 'def']);
  expect(byTestId('ais-compare-row-lineage.code_hash').className).toContain('ais-compare-differs');
});

test('CompareView loads the versions asked for; "only differences" hides equal rows', async () => {
  const api = { compareVersions: jest.fn().mockResolvedValue(DATA) };
  act(() => dom.root.render(<CompareView api={api} modelId="mdl_1" modelName="iris" versions={[1, 2]} />));
  await flush();
  expect(api.compareVersions).toHaveBeenCalledWith('mdl_1', [1, 2]);
  expect(dom.container.querySelector('[data-testid="ais-compare-row-metrics.f1"]')).not.toBeNull();
  act(() => byTestId('ais-compare-only-differences').click());
  expect(dom.container.querySelector('[data-testid="ais-compare-row-metrics.f1"]')).toBeNull();
  expect(dom.container.querySelector('[data-testid="ais-compare-row-hyperparameters.epochs"]')).toBeNull();
  expect(dom.container.querySelector('[data-testid="ais-compare-row-hyperparameters.lr"]')).not.toBeNull();
});

test('the Models panel compares the ticked versions', async () => {
  const compare = jest.fn();
  const studio = {
    api: {
      models: jest.fn().mockResolvedValue([{ id: 'm1', name: 'iris', latest_version: 3 }]),
      modelVersions: jest.fn().mockResolvedValue([
        { id: 'v3', model_id: 'm1', version: 3, stage: 'none', metrics: {} },
        { id: 'v2', model_id: 'm1', version: 2, stage: 'none', metrics: {} },
        { id: 'v1', model_id: 'm1', version: 1, stage: 'none', metrics: {} }
      ])
    },
    events: { subscribe: jest.fn(() => () => undefined) },
    settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 },
    insertSnippet: () => false,
    compare
  } as unknown as IStudio;
  act(() => dom.root.render(<ModelsPanel studio={studio} />));
  await flush();
  act(() => byTestId('ais-model-versions-toggle').click());
  await flush();
  const button = byTestId('ais-model-compare') as HTMLButtonElement;
  expect(button.disabled).toBe(true);
  act(() => (byTestId('ais-model-version-select', byTestId('ais-model-version-3')) as HTMLInputElement).click());
  expect(button.disabled).toBe(true);
  act(() => (byTestId('ais-model-version-select', byTestId('ais-model-version-1')) as HTMLInputElement).click());
  expect(button.disabled).toBe(false);
  act(() => button.click());
  expect(compare).toHaveBeenCalledWith('m1', [1, 3], 'iris');
});

test('compareOpener: one tab per model and version set', () => {
  const shell = { add: jest.fn(), activateById: jest.fn() };
  // Lumino's widgets need a browser's DragEvent; the opener needs only these members
  const build = jest.fn((modelId: string, versions: number[], name?: string) => {
    const listeners: (() => void)[] = [];
    const widget = {
      id: '',
      isDisposed: false,
      title: { label: `Compare ${name ?? modelId} ${versions.map(v => `v${v}`).join(', ')}` },
      disposed: { connect: (listener: () => void) => listeners.push(listener) },
      dispose() {
        widget.isDisposed = true;
        listeners.forEach(listener => listener());
      }
    };
    return widget as unknown as Widget;
  });
  const open = compareOpener(shell, build);
  const first = open('mdl_1', [2, 1], 'iris');
  expect(build).toHaveBeenLastCalledWith('mdl_1', [1, 2], 'iris');
  expect(first.id).toBe(compareKey('mdl_1', [1, 2]));
  expect(first.title.label).toBe('Compare iris v1, v2');
  // the same set again, in another order: the open tab, activated
  expect(open('mdl_1', [1, 2, 2], 'iris')).toBe(first);
  expect(shell.add).toHaveBeenCalledTimes(1);
  expect(shell.activateById).toHaveBeenCalledTimes(2);
  const other = open('mdl_1', [1, 3]);
  expect(other).not.toBe(first);
  // a closed tab opens anew
  first.dispose();
  expect(open('mdl_1', [1, 2])).not.toBe(first);
  expect(shell.add).toHaveBeenCalledTimes(3);
  other.dispose();
});

test('compareKey: safe as a DOM id whatever the model id holds', () => {
  expect(compareKey('mdl 1"/><x', [3, 1])).toBe('aistudio-compare-mdl_1____x-1-3');
});
