/**
 * Versions of a model side by side in the main area: metrics (the best value of each row
 * emphasised), hyperparameters and lineage, one column per version, rows that differ marked.
 */
import type { Widget } from '@lumino/widgets';
import React, { useEffect, useState } from 'react';

import type { ApiClient } from '../api';
import type { ModelCompare } from '../types';
import { ErrorBox } from './ErrorBoundary';

export type CompareSection = 'metrics' | 'hyperparameters' | 'lineage';

export interface ICompareRow {
  section: CompareSection;
  key: string;
  values: unknown[];
  differs: boolean;
  /** Columns holding the best value (metrics whose values differ only). */
  best: number[];
}

/** Whether a smaller value of metric `name` is the better one (losses and errors). */
export function lowerIsBetter(name: string): boolean {
  return /loss|error|mae|mse|rmse/i.test(name);
}

/** The columns holding the best of `values` for metric `name`; none when there is nothing to choose. */
export function bestColumns(name: string, values: unknown[]): number[] {
  const numbers = values.map(v => (typeof v === 'number' && isFinite(v) ? v : null));
  const present = numbers.filter((v): v is number => v !== null);
  if (present.length < 2 || present.every(v => v === present[0])) {
    return [];
  }
  const best = lowerIsBetter(name) ? Math.min(...present) : Math.max(...present);
  return numbers.flatMap((v, i) => (v === best ? [i] : []));
}

function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** The table's rows in display order: metrics, then hyperparameters, then lineage. */
export function compareRows(data: ModelCompare): ICompareRow[] {
  const differs = new Set(data.differs);
  const rows: ICompareRow[] = [];
  for (const section of ['metrics', 'hyperparameters', 'lineage'] as CompareSection[]) {
    const table = data[section] ?? {};
    for (const key of Object.keys(table).sort()) {
      const values = table[key];
      // the API lists differing hyperparameters and lineage; metrics differ whenever they are not all equal
      const differ = section === 'metrics' ? values.some(v => !same(v, values[0])) : differs.has(`${section}.${key}`);
      rows.push({ section, key, values, differs: differ, best: section === 'metrics' ? bestColumns(key, values) : [] });
    }
  }
  return rows;
}

export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '–';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A bar as long as the value's place between the row's smallest and largest. */
function Bar(props: { value: unknown; values: unknown[] }): JSX.Element | null {
  if (typeof props.value !== 'number') {
    return null;
  }
  const numbers = props.values.filter((v): v is number => typeof v === 'number' && isFinite(v));
  const min = Math.min(...numbers);
  const max = Math.max(...numbers);
  const share = max === min ? 1 : (props.value - min) / (max - min);
  return (
    <span className="ais-compare-bar" aria-hidden="true">
      <span style={{ width: `${Math.round(10 + share * 90)}%` }} />
    </span>
  );
}

const SECTION_TITLES: Record<CompareSection, string> = {
  metrics: 'Metrics',
  hyperparameters: 'Hyperparameters',
  lineage: 'Lineage'
};

export function CompareTable(props: { data: ModelCompare; onlyDifferences: boolean }): JSX.Element {
  const { data } = props;
  const rows = compareRows(data).filter(row => !props.onlyDifferences || row.differs);
  const columns = data.versions.length;
  return (
    <table className="ais-compare-table" data-testid="ais-compare-table">
      <thead>
        <tr>
          <th />
          {data.versions.map(column => (
            <th key={column.version} data-testid={`ais-compare-column-${column.version}`}>
              v{column.version} <span className={`ais-badge ais-stage-${column.stage}`}>{column.stage}</span>
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {(['metrics', 'hyperparameters', 'lineage'] as CompareSection[]).map(section => {
          const shown = rows.filter(row => row.section === section);
          return (
            <React.Fragment key={section}>
              <tr className="ais-compare-section">
                <th colSpan={columns + 1}>{SECTION_TITLES[section]}</th>
              </tr>
              {shown.length === 0 && (
                <tr>
                  <td className="ais-compare-none" colSpan={columns + 1}>
                    {props.onlyDifferences ? 'No differences.' : 'None recorded.'}
                  </td>
                </tr>
              )}
              {shown.map(row => (
                <tr
                  key={row.key}
                  className={row.differs ? 'ais-compare-differs' : undefined}
                  data-testid={`ais-compare-row-${section}.${row.key}`}
                  data-differs={row.differs}
                >
                  <th scope="row" title={section === 'metrics' ? (lowerIsBetter(row.key) ? 'lower is better' : 'higher is better') : undefined}>
                    {row.key}
                    {section === 'metrics' && <span className="ais-compare-direction">{lowerIsBetter(row.key) ? ' ↓' : ' ↑'}</span>}
                  </th>
                  {row.values.map((value, i) => {
                    const best = row.best.includes(i);
                    return (
                      <td key={i} className={best ? 'ais-compare-best' : undefined} data-testid="ais-compare-cell" data-best={best}>
                        {best ? <strong>{formatValue(value)}</strong> : formatValue(value)}
                        {section === 'metrics' && <Bar value={value} values={row.values} />}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </React.Fragment>
          );
        })}
      </tbody>
    </table>
  );
}

/** Loads the comparison and shows it, with the "only differences" switch and Retry on failure. */
export function CompareView(props: { api: Pick<ApiClient, 'compareVersions'>; modelId: string; modelName?: string; versions: number[] }): JSX.Element {
  const [tick, setTick] = useState(0);
  const [state, setState] = useState<{ data?: ModelCompare; error?: unknown }>({});
  const [onlyDifferences, setOnlyDifferences] = useState(false);
  useEffect(() => {
    let live = true;
    setState({});
    props.api.compareVersions(props.modelId, props.versions).then(
      data => live && setState({ data }),
      error => live && setState({ error })
    );
    return () => {
      live = false;
    };
  }, [props.modelId, props.versions.join(','), tick]);
  return (
    <div className="ais-compare" data-testid="ais-compare">
      <div className="ais-compare-header">
        <span className="ais-compare-title">{props.modelName ?? props.modelId}</span>
        <label>
          <input type="checkbox" data-testid="ais-compare-only-differences" checked={onlyDifferences} onChange={e => setOnlyDifferences(e.target.checked)} /> Only differences
        </label>
      </div>
      {state.error ? (
        <ErrorBox name="compare" error={state.error} onRetry={() => setTick(t => t + 1)} />
      ) : state.data ? (
        <CompareTable data={state.data} onlyDifferences={onlyDifferences} />
      ) : (
        <div className="ais-empty">Loading…</div>
      )}
    </div>
  );
}

/** The key of one comparison: the same model and set of versions opens the same tab. */
export function compareKey(modelId: string, versions: number[]): string {
  return `aistudio-compare-${modelId.replace(/[^A-Za-z0-9_-]/g, '_')}-${versionSet(versions).join('-')}`;
}

/** Versions as the tab shows and asks for them: each once, in ascending order. */
export function versionSet(versions: number[]): number[] {
  return Array.from(new Set(versions)).sort((a, b) => a - b);
}

/**
 * What opens comparisons in `shell`'s main area: one tab per model and version set; asking
 * again for an open set activates its tab instead of adding a second one. `build` makes the
 * tab (compareWidget.tsx, kept apart so this logic is testable without Lab's DOM modules).
 */
export function compareOpener<W extends Widget>(
  shell: { add(widget: W, area: 'main'): void; activateById(id: string): void },
  build: (modelId: string, versions: number[], modelName?: string) => W
): (modelId: string, versions: number[], modelName?: string) => W {
  const open = new Map<string, W>();
  return (modelId, versions, modelName) => {
    const id = compareKey(modelId, versions);
    const existing = open.get(id);
    if (existing && !existing.isDisposed) {
      shell.activateById(id);
      return existing;
    }
    const widget = build(modelId, versionSet(versions), modelName);
    widget.id = id;
    widget.disposed.connect(() => open.delete(id));
    open.set(id, widget);
    shell.add(widget, 'main');
    shell.activateById(id);
    return widget;
  };
}
