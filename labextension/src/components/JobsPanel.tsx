import React, { useEffect, useMemo, useState } from 'react';

import { useLoad } from '../hooks';
import { formatTime, IStudio } from '../studio';
import { Job, JOB_STATES, JobLog, TERMINAL_STATES } from '../types';
import { ErrorBox } from './ErrorBoundary';

type Filter = 'all' | 'active' | Job['state'];

function newer(a: Job, b: Job): boolean {
  return (a.updated_at ?? '') >= (b.updated_at ?? '');
}

function JobLogs(props: { studio: IStudio; job: Job }): JSX.Element {
  const [log, setLog] = useState<JobLog | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [stream, setStream] = useState<'stdout' | 'stderr'>('stdout');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError(null);
    // the tail: the last 64 KiB is what a sidebar can show
    props.studio.api
      .jobLogs(props.job.id, { stream, limit: 65536 })
      .then(first => (first.size > first.next_offset ? props.studio.api.jobLogs(props.job.id, { stream, offset: Math.max(0, first.size - 65536), limit: 65536 }) : first))
      .then(
        value => live && setLog(value),
        failure => live && setError(failure)
      );
    return () => {
      live = false;
    };
  }, [props.job.id, props.job.state, stream, tick]);
  // new output is announced on the job's topic: read the tail again (at most twice a second)
  useEffect(() => {
    let pending: ReturnType<typeof setTimeout> | null = null;
    const stop = props.studio.events.subscribe(`job:${props.job.id}`, event => {
      if ((event.type === 'log' && event.data?.stream === stream) || event.type === 'resync') {
        if (pending !== null) {
          return;
        }
        pending = setTimeout(() => {
          pending = null;
          setTick(t => t + 1);
        }, 500);
      }
    });
    return () => {
      stop();
      if (pending !== null) {
        clearTimeout(pending);
      }
    };
  }, [props.job.id, stream]);
  return (
    <div className="ais-logs" data-testid="ais-job-log">
      <div className="ais-logs-bar">
        <select value={stream} onChange={e => setStream(e.target.value as 'stdout' | 'stderr')} aria-label="Log stream">
          <option value="stdout">stdout</option>
          <option value="stderr">stderr</option>
        </select>
        <button className="jp-Button jp-mod-styled ais-small" onClick={() => setTick(t => t + 1)}>
          Reload
        </button>
      </div>
      {error ? (
        <ErrorBox name="job-log" error={error} onRetry={() => setTick(t => t + 1)} />
      ) : (
        <pre className="ais-logs-text" data-testid="ais-job-log-text">
          {log === null ? 'Loading…' : log.text || '(empty)'}
        </pre>
      )}
    </div>
  );
}

function JobRow(props: { studio: IStudio; job: Job; onChange: (job: Job) => void }): JSX.Element {
  const { job } = props;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [showLogs, setShowLogs] = useState(false);
  const finished = TERMINAL_STATES.includes(job.state);
  // a failed action was about the state it was tried in: a new state makes it moot
  useEffect(() => setError(null), [job.state]);
  const cancel = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      props.onChange(await props.studio.api.cancelJob(job.id));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <li className="ais-row" data-testid={`ais-job-${job.id}`} data-state={job.state}>
      <div className="ais-row-main">
        <span className="ais-name" title={job.id}>
          {job.name || job.id}
        </span>
        <span className={`ais-badge ais-state-${job.state}`} data-testid="ais-job-state">
          {job.state}
        </span>
      </div>
      <div className="ais-row-meta">
        {job.kind} · {formatTime(job.created_at)}
        {typeof job.progress === 'number' && !finished ? ` · ${Math.round(job.progress * 100)}%` : ''}
        {job.exit_reason ? ` · ${job.exit_reason}` : ''}
      </div>
      <div className="ais-row-actions">
        {props.studio.open && (
          <button
            className="jp-Button jp-mod-styled ais-small"
            data-testid="ais-job-monitor"
            title="Open this job's live curves, progress and log in a tab (no kernel needed)"
            onClick={() => props.studio.open?.('monitor', job.id, job.name || job.id)}
          >
            Monitor
          </button>
        )}
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-job-logs" onClick={() => setShowLogs(s => !s)}>
          {showLogs ? 'Hide logs' : 'Logs'}
        </button>
        {!finished && (
          <button className="jp-Button jp-mod-styled jp-mod-warn ais-small" data-testid="ais-job-cancel" disabled={busy || !!job.cancel_requested_at} onClick={cancel}>
            {job.cancel_requested_at ? 'Canceling…' : 'Cancel'}
          </button>
        )}
      </div>
      {error !== null && (
        // the server's words (or why it could not be reached), and the same action again
        <div data-testid="ais-job-action-error">
          <ErrorBox name="job-action" error={error} onRetry={cancel} />
        </div>
      )}
      {showLogs && <JobLogs studio={props.studio} job={job} />}
    </li>
  );
}

/** Every job of the user, live: loaded once, then kept current by `user:<me>` `job` events. */
export function JobsPanel(props: { studio: IStudio }): JSX.Element {
  const { studio } = props;
  const [filter, setFilter] = useState<Filter>('all');
  const [jobs, setJobs] = useState<Map<string, Job>>(new Map());
  const me = useLoad(() => studio.api.me(), []);
  const username = me.data?.username;

  const upsert = (job: Job): void =>
    setJobs(current => {
      const known = current.get(job.id);
      if (known && !newer(job, known)) {
        return current;
      }
      const next = new Map(current);
      next.set(job.id, { ...known, ...job });
      return next;
    });

  // subscribe before listing: a change between the two is then never missed
  useEffect(() => {
    if (!username) {
      return;
    }
    return studio.events.subscribe(`user:${username}`, event => {
      if (event.type === 'job' && event.data && typeof event.data.id === 'string') {
        upsert(event.data as Job);
      } else if (event.type === 'resync') {
        // events were missed for good (pruned, or a server on a fresh database): what is
        // shown may hold jobs that no longer exist, so it is replaced by a new listing
        setJobs(new Map());
        listed.reload();
      }
    });
  }, [username]);

  const listed = useLoad(() => (username ? studio.api.jobs() : Promise.resolve(null)), [username]);
  useEffect(() => {
    if (listed.data) {
      listed.data.items.forEach(upsert);
    }
  }, [listed.data]);

  const shown = useMemo(() => {
    const all = Array.from(jobs.values()).sort((a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? ''));
    if (filter === 'all') {
      return all;
    }
    if (filter === 'active') {
      return all.filter(job => !TERMINAL_STATES.includes(job.state));
    }
    return all.filter(job => job.state === filter);
  }, [jobs, filter]);

  return (
    <div className="ais-panel-body" data-testid="ais-jobs">
      <div className="ais-toolbar">
        <select value={filter} onChange={e => setFilter(e.target.value as Filter)} data-testid="ais-job-filter" aria-label="Filter jobs by state">
          <option value="all">All states</option>
          <option value="active">Active</option>
          {JOB_STATES.map(state => (
            <option key={state} value={state}>
              {state}
            </option>
          ))}
        </select>
        <button className="jp-Button jp-mod-styled ais-small" onClick={listed.reload}>
          Refresh
        </button>
      </div>
      {listed.loading && jobs.size === 0 ? (
        <div className="ais-empty">Loading…</div>
      ) : shown.length === 0 ? (
        <div className="ais-empty" data-testid="ais-jobs-empty">
          {jobs.size === 0 ? 'No jobs yet.' : 'No job in this state.'}
        </div>
      ) : (
        <ul className="ais-list">
          {shown.map(job => (
            <JobRow key={job.id} studio={studio} job={job} onChange={upsert} />
          ))}
        </ul>
      )}
    </div>
  );
}
