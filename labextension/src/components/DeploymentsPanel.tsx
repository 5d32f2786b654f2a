import React, { useEffect, useRef, useState } from 'react';

import { ApiError } from '../api';
import { useLoad, useUserChanges } from '../hooks';
import { predictExample } from '../predict';
import { formatTime, IStudio } from '../studio';
import type { Deployment, StudioEvent } from '../types';

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

/** The test-predict form: a JSON body prefilled from the input schema, the answer as text. */
function PredictForm(props: { studio: IStudio; deployment: Deployment }): JSX.Element {
  const { deployment } = props;
  const [body, setBody] = useState(() => JSON.stringify(predictExample(deployment.input_schema), null, 2));
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const send = async (): Promise<void> => {
    setError(null);
    setResult(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (failure) {
      setError(`Not valid JSON: ${message(failure)}`);
      return;
    }
    setBusy(true);
    try {
      const answer = await props.studio.api.predict(deployment.id, parsed);
      setResult(JSON.stringify(answer.predictions));
    } catch (failure) {
      setError(message(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="ais-predict" data-testid="ais-predict">
      <textarea
        className="ais-predict-body"
        data-testid="ais-predict-body"
        aria-label="Prediction request (JSON)"
        spellCheck={false}
        rows={6}
        value={body}
        onChange={e => setBody(e.target.value)}
      />
      <div className="ais-row-actions">
        <button className="jp-Button jp-mod-styled jp-mod-accept ais-small" data-testid="ais-predict-send" disabled={busy} onClick={send}>
          {busy ? 'Sending…' : 'Send'}
        </button>
      </div>
      {result !== null && (
        <pre className="ais-predict-result" data-testid="ais-predict-result">
          {result}
        </pre>
      )}
      {error !== null && (
        <div className="ais-inline-error" role="alert" data-testid="ais-predict-error">
          {error}
        </div>
      )}
    </div>
  );
}

/** One deployment, kept current by its `deployment:<id>` events. */
export function DeploymentRow(props: { studio: IStudio; deployment: Deployment }): JSX.Element {
  const [live, setLive] = useState<Partial<Deployment>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [testing, setTesting] = useState(false);
  // events seen: an action's answer must not undo a state change that arrived before it
  const seen = useRef(0);
  // a fresh listing is at least as new as the events before it
  useEffect(() => setLive({}), [props.deployment]);
  useEffect(
    () =>
      props.studio.events.subscribe(`deployment:${props.deployment.id}`, event => {
        const data = event.data ?? {};
        if (event.type === 'replica' && typeof data.index === 'number') {
          setLive(current => {
            const replicas = (current.replica_status ?? props.deployment.replica_status ?? []).filter(r => r.index !== data.index);
            return { ...current, replica_status: [...replicas, data].sort((a, b) => a.index - b.index) };
          });
        }
        if (event.type === 'status') {
          seen.current += 1;
          setLive(current => ({
            ...current,
            ...(typeof data.state === 'string' ? { state: data.state } : {}),
            ...(data.message !== undefined ? { status_message: data.message } : {}),
            ...(typeof data.ready_replicas === 'number' ? { ready_replicas: data.ready_replicas } : {}),
            ...(typeof data.replicas === 'number' ? { replicas: data.replicas } : {}),
            ...(data.model_version !== undefined ? { model_version: data.model_version } : {})
          }));
        }
      }),
    [props.deployment.id]
  );
  const deployment: Deployment = { ...props.deployment, ...live };
  const stopped = deployment.desired_state === 'stopped' || deployment.state === 'stopped' || deployment.state === 'failed';
  const act = async (action: 'stop' | 'start'): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const before = seen.current;
      const answer = await props.studio.api.deploymentAction(deployment.id, action);
      setLive(current =>
        seen.current === before
          ? { ...current, ...answer }
          : { ...current, desired_state: answer.desired_state }
      );
    } catch (failure) {
      setError(message(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <li className="ais-row" data-testid={`ais-deployment-${deployment.id}`} data-state={deployment.state}>
      <div className="ais-row-main">
        <span className="ais-name" title={deployment.id}>
          {deployment.name || deployment.id}
        </span>
        <span className={`ais-badge ais-state-${deployment.state}`} data-testid="ais-deployment-state">
          {deployment.state}
        </span>
      </div>
      <div className="ais-row-meta">
        <span data-testid="ais-deployment-replicas">
          {deployment.ready_replicas}/{deployment.replicas} ready
        </span>
        {deployment.model_version !== null && deployment.model_version !== undefined ? ` · v${deployment.model_version}` : ''}
        {` · ${formatTime(deployment.updated_at ?? deployment.created_at)}`}
      </div>
      {deployment.status_message && (
        <div className="ais-row-meta" data-testid="ais-deployment-message">
          {deployment.status_message}
        </div>
      )}
      {(deployment.replica_status ?? [])
        .filter(replica => replica.last_error && replica.state !== 'ready' && replica.state !== 'stopped')
        .map(replica => (
          <div key={replica.index} className="ais-inline-error" data-testid="ais-deployment-replica-error">
            {`replica ${replica.index} (${replica.state}, ${replica.restarts} restarts): ${replica.last_error}`}
          </div>
        ))}
      <div className="ais-row-actions">
        {stopped ? (
          <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-deployment-start" disabled={busy} onClick={() => act('start')}>
            Start
          </button>
        ) : (
          <button className="jp-Button jp-mod-styled jp-mod-warn ais-small" data-testid="ais-deployment-stop" disabled={busy} onClick={() => act('stop')}>
            Stop
          </button>
        )}
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-deployment-test" onClick={() => setTesting(t => !t)}>
          {testing ? 'Hide test' : 'Test'}
        </button>
      </div>
      {error !== null && (
        <div className="ais-inline-error" role="alert" data-testid="ais-deployment-action-error">
          {error}
        </div>
      )}
      {testing && <PredictForm studio={props.studio} deployment={deployment} />}
    </li>
  );
}

const changed = new Set<() => void>();

/** Another panel created or removed a deployment: listed panels load again. */
export function notifyDeploymentsChanged(): void {
  changed.forEach(listener => listener());
}

/** A deployment was created, changed or deleted: the list reloads. Its rows follow their own
 * state, so the `state` events (a rollout sends many) need no reload. */
function listChanged(event: StudioEvent): boolean {
  return event.data?.action !== 'state';
}

/**
 * The user's deployments: listed, re-listed when `user:<me>` announces a created, changed or
 * deleted deployment (and every refresh interval, as a fallback), each row live.
 */
export function DeploymentsPanel(props: { studio: IStudio }): JSX.Element {
  // subscribed before the list is read, so a change in between is not missed
  const changes = useUserChanges(props.studio, ['deployment'], { accept: listChanged });
  const listed = useLoad(() => props.studio.api.deployments(), [changes], props.studio.settings.refreshInterval);
  useEffect(() => {
    changed.add(listed.reload);
    return () => {
      changed.delete(listed.reload);
    };
  }, [listed.reload]);
  if (!listed.data) {
    return <div className="ais-empty">Loading…</div>;
  }
  if (listed.data.length === 0) {
    return (
      <div className="ais-empty" data-testid="ais-deployments-empty">
        No deployments yet.{' '}
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-deployments-refresh" onClick={listed.reload}>
          Refresh
        </button>
      </div>
    );
  }
  return (
    <div>
      <div className="ais-logs-bar">
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-deployments-refresh" onClick={listed.reload}>
          Refresh
        </button>
      </div>
      <ul className="ais-list" data-testid="ais-deployments">
        {listed.data.map(deployment => (
          <DeploymentRow key={deployment.id} studio={props.studio} deployment={deployment} />
        ))}
      </ul>
    </div>
  );
}
