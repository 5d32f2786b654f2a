import React, { useState } from 'react';

import { ApiError } from '../api';
import { useLoad, useUserChanges } from '../hooks';
import { formatTime, IStudio } from '../studio';
import type { Model, ModelVersion } from '../types';
import { ErrorBox } from './ErrorBoundary';
import { notifyDeploymentsChanged } from './DeploymentsPanel';

/** The name a deployment of `model` v`version` gets: the API's names are at most 128 long. */
export function deploymentName(model: string, version: number): string {
  return `${model.slice(0, 110)}-v${version}`;
}

/** At most `count` numeric metrics, as `key value` pairs with 4 significant digits. */
export function keyMetrics(metrics: Record<string, unknown>, count = 3): string {
  return Object.entries(metrics ?? {})
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number' && isFinite(entry[1]))
    .slice(0, count)
    .map(([key, value]) => `${key} ${Number(value.toPrecision(4))}`)
    .join(' · ');
}

function VersionRow(props: { studio: IStudio; model: Model; version: ModelVersion; selected: boolean; onSelect: (selected: boolean) => void }): JSX.Element {
  const { model, version } = props;
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const deploy = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const created = await props.studio.api.deploy({ name: deploymentName(model.name, version.version), model_id: model.id, model_version: version.version });
      setNotice(`Deploying as ${created.name}`);
      notifyDeploymentsChanged();
    } catch (failure) {
      setError(failure instanceof ApiError || failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <li className="ais-version" data-testid={`ais-model-version-${version.version}`}>
      <div className="ais-row-main">
        <label className="ais-name">
          <input
            type="checkbox"
            data-testid="ais-model-version-select"
            aria-label={`Select v${version.version} to compare`}
            checked={props.selected}
            onChange={e => props.onSelect(e.target.checked)}
          />
          v{version.version}
        </label>
        <span className={`ais-badge ais-stage-${version.stage}`} data-testid="ais-model-version-stage">
          {version.stage}
        </span>
        <button className="jp-Button jp-mod-styled jp-mod-accept ais-small" data-testid="ais-model-deploy" disabled={busy} onClick={deploy}>
          Deploy
        </button>
      </div>
      <div className="ais-row-meta" data-testid="ais-model-version-metrics">
        {keyMetrics(version.metrics) || 'no metrics'}
      </div>
      {notice !== null && (
        <div className="ais-row-meta" data-testid="ais-model-deploy-notice">
          {notice}
        </div>
      )}
      {error !== null && (
        <div className="ais-inline-error" role="alert" data-testid="ais-model-deploy-error">
          {error}
        </div>
      )}
    </li>
  );
}

function Versions(props: { studio: IStudio; model: Model }): JSX.Element {
  const [tick, setTick] = useState(0);
  const [state, setState] = useState<{ data?: ModelVersion[]; error?: unknown }>({});
  const [selected, setSelected] = useState<number[]>([]);
  const select = (version: number, on: boolean): void =>
    setSelected(current => (on ? Array.from(new Set([...current, version])).sort((a, b) => a - b) : current.filter(v => v !== version)));
  React.useEffect(() => {
    let live = true;
    props.studio.api.modelVersions(props.model.id).then(
      data => live && setState({ data }),
      error => live && setState({ error })
    );
    return () => {
      live = false;
    };
  }, [props.model.id, props.model.latest_version, props.model.updated_at, tick]);
  if (state.error) {
    return <ErrorBox name="model-versions" error={state.error} onRetry={() => setTick(t => t + 1)} />;
  }
  if (!state.data) {
    return <div className="ais-empty">Loading…</div>;
  }
  const compare = props.studio.compare;
  // a version deleted since it was ticked is not compared (the API would answer 404)
  const chosen = selected.filter(v => state.data!.some(row => row.version === v));
  return (
    <div>
      <ul className="ais-versions" data-testid="ais-model-versions">
        {state.data.map(version => (
          <VersionRow
            key={version.id}
            studio={props.studio}
            model={props.model}
            version={version}
            selected={chosen.includes(version.version)}
            onSelect={on => select(version.version, on)}
          />
        ))}
      </ul>
      {state.data.length > 1 && (
        <div className="ais-row-actions">
          <button
            className="jp-Button jp-mod-styled ais-small"
            data-testid="ais-model-compare"
            disabled={!compare || chosen.length < 2}
            title={chosen.length < 2 ? 'Tick two or more versions to compare them' : undefined}
            onClick={() => compare?.(props.model.id, chosen, props.model.name)}
          >
            {chosen.length < 2 ? 'Compare' : `Compare ${chosen.length} versions`}
          </button>
        </div>
      )}
    </div>
  );
}

function ModelRow(props: { studio: IStudio; model: Model }): JSX.Element {
  const { model } = props;
  const [open, setOpen] = useState(false);
  return (
    <li className="ais-row" data-testid={`ais-model-${model.id}`}>
      <div className="ais-row-main">
        <span className="ais-name" title={model.id}>
          {model.name || model.id}
        </span>
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-model-versions-toggle" aria-expanded={open} onClick={() => setOpen(o => !o)}>
          {open ? 'Hide versions' : `Versions (${model.latest_version})`}
        </button>
      </div>
      <div className="ais-row-meta">
        {model.task ? `${model.task} · ` : ''}
        {formatTime(model.updated_at ?? model.created_at)}
      </div>
      {open && <Versions studio={props.studio} model={model} />}
    </li>
  );
}

/** The model registry: each model with its versions (stage, key metrics), a Deploy button, and
 * Compare for the ticked versions. */
export function ModelsPanel(props: { studio: IStudio }): JSX.Element {
  // live from `model` events on user:<me> (registered, staged, deleted), subscribed before listing
  const changes = useUserChanges(props.studio, ['model']);
  const listed = useLoad(() => props.studio.api.models(), [changes], props.studio.settings.refreshInterval);
  if (!listed.data) {
    return <div className="ais-empty">Loading…</div>;
  }
  if (listed.data.length === 0) {
    return (
      <div className="ais-empty" data-testid="ais-models-empty">
        No models registered yet.
      </div>
    );
  }
  return (
    <ul className="ais-list" data-testid="ais-models">
      {listed.data.map(model => (
        <ModelRow key={model.id} studio={props.studio} model={model} />
      ))}
    </ul>
  );
}
