import React, { useEffect, useRef, useState } from 'react';
import type { Upload } from 'tus-js-client';

import { useDebounced, useLoad, useUserChanges, useUserEvents } from '../hooks';
import { datasetSnippet, formatBytes, IStudio } from '../studio';
import type { Dataset, StudioEvent, Validation } from '../types';
import { startUpload } from '../upload';
import { ErrorBoundary } from './ErrorBoundary';

interface IUploadRow {
  key: number;
  filename: string;
  sent: number;
  total: number;
  state: 'uploading' | 'paused' | 'processing' | 'completed' | 'failed';
  error?: string;
  datasetId?: string;
  /** The server's upload id, once created. */
  id?: string;
  upload: Upload;
}

function validationLabel(v: Validation | null | undefined): string {
  if (v === undefined) {
    return '…';
  }
  if (v === null) {
    return 'not validated';
  }
  if (v.state === 'pending' || v.state === 'running' || v.state === 'queued') {
    return 'validating…';
  }
  if (v.passed === true) {
    return 'valid';
  }
  if (v.passed === false) {
    return 'invalid';
  }
  return v.state;
}

function DatasetRow(props: { studio: IStudio; dataset: Dataset; live?: Validation; onInserted: (ok: boolean) => void }): JSX.Element {
  const { studio, dataset } = props;
  const [validation, setValidation] = useState<Validation | null | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    studio.api.validations(dataset.id, 1).then(
      page => live && setValidation(page.items[0] ?? null),
      () => live && setValidation(null)
    );
    return () => {
      live = false;
    };
  }, [dataset.id, dataset.latest_version, tick]);
  // its validation's progress comes through the list's one user:<me> subscription
  useEffect(() => {
    if (props.live) {
      setValidation(props.live);
    }
  }, [props.live]);
  const label = validationLabel(validation);
  return (
    <li className="ais-row" data-testid={`ais-dataset-${dataset.id}`} data-name={dataset.name}>
      <div className="ais-row-main">
        <span className="ais-name" title={dataset.description || dataset.name}>
          {dataset.name}
        </span>
        <span className={`ais-badge ais-validation-${label.replace(/[^a-z]/g, '')}`} data-testid="ais-dataset-validation">
          {label}
        </span>
      </div>
      <div className="ais-row-meta">
        v{dataset.latest_version} · {formatBytes(dataset.size_bytes)} · {dataset.visibility}
      </div>
      <div className="ais-row-actions">
        {studio.open && (
          <button
            className="jp-Button jp-mod-styled ais-small"
            data-testid="ais-dataset-explore"
            title="Open this dataset's rows and statistics in a tab (no kernel needed)"
            onClick={() => studio.open?.('explorer', dataset.id, dataset.name)}
          >
            Explore
          </button>
        )}
        <button
          className="jp-Button jp-mod-styled ais-small"
          data-testid="ais-dataset-insert"
          title="Insert code that loads this dataset into the active notebook cell"
          onClick={() => props.onInserted(studio.insertSnippet(datasetSnippet(dataset.name)))}
        >
          Insert snippet
        </button>
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-dataset-validate" onClick={() => studio.api.validate(dataset.id).then(() => setTick(t => t + 1), () => setTick(t => t + 1))}>
          Validate
        </button>
      </div>
    </li>
  );
}

/** A dataset was created, changed, given a version or deleted: the list reloads. */
function listChanged(event: StudioEvent): boolean {
  return event.data?.action !== 'validation';
}

function DatasetList(props: { studio: IStudio; q: string; version: number; onInserted: (ok: boolean) => void }): JSX.Element {
  // one subscription, user:<me>, for every row (made before the list is read): changes reload
  // the list, a validation's progress patches its row without a request
  const changes = useUserChanges(props.studio, ['dataset'], { accept: listChanged });
  const [validations, setValidations] = useState<Map<string, Validation>>(() => new Map());
  useUserEvents(props.studio, ['dataset'], event => {
    const report = event.data?.validation;
    if (event.data?.action === 'validation' && typeof event.data.id === 'string' && report) {
      setValidations(current => new Map(current).set(event.data.id, report as Validation));
    }
  });
  const listed = useLoad(() => props.studio.api.datasets({ q: props.q || undefined }), [props.q, props.version, changes], props.studio.settings.refreshInterval);
  const items = listed.data?.items ?? [];
  if (listed.data === undefined) {
    return <div className="ais-empty">Loading…</div>;
  }
  if (items.length === 0) {
    return (
      <div className="ais-empty" data-testid="ais-datasets-empty">
        {props.q ? 'No dataset matches.' : 'No datasets yet: drop a file above.'}
      </div>
    );
  }
  return (
    <ul className="ais-list" data-testid="ais-dataset-list">
      {items.map(dataset => (
        <DatasetRow key={dataset.id} studio={props.studio} dataset={dataset} live={validations.get(dataset.id)} onInserted={props.onInserted} />
      ))}
    </ul>
  );
}

export function DatasetsPanel(props: { studio: IStudio }): JSX.Element {
  const { studio } = props;
  const [search, setSearch] = useState('');
  const q = useDebounced(search.trim(), 300);
  const [uploads, setUploads] = useState<IUploadRow[]>([]);
  const [dragging, setDragging] = useState(false);
  const [version, setVersion] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const counter = useRef(0);
  const unsubscribers = useRef<(() => void)[]>([]);
  const input = useRef<HTMLInputElement>(null);

  useEffect(
    () => () => {
      unsubscribers.current.forEach(stop => stop());
    },
    []
  );

  const patch = (key: number, change: Partial<IUploadRow>): void =>
    setUploads(rows => rows.map(row => (row.key === key ? { ...row, ...change } : row)));

  const completed = (key: number, datasetId: string): void => {
    patch(key, { state: 'completed', datasetId });
    setVersion(v => v + 1);
    if (studio.settings.validateUploads) {
      studio.api.validate(datasetId).then(
        () => setVersion(v => v + 1),
        failure => patch(key, { error: `Uploaded, but validation did not start: ${failure?.message ?? failure}` })
      );
    }
  };

  const add = (files: FileList | File[]): void => {
    for (const file of Array.from(files)) {
      const key = ++counter.current;
      const upload = startUpload(studio.api.settings, file, {
        onProgress: (sent, total) => patch(key, { sent, total }),
        onId: id => {
          patch(key, { id });
          // since=0: the whole history, so a completion published before we subscribed counts
          const stop = studio.events.subscribe(
            `upload:${id}`,
            event => {
              if (event.type === 'status' && event.data?.state === 'completed') {
                completed(key, event.data.dataset_id);
              } else if (event.type === 'status' && event.data?.state === 'failed') {
                patch(key, { state: 'failed', error: event.data.error ?? 'The upload failed.' });
              }
            },
            0
          );
          unsubscribers.current.push(stop);
        },
        onSuccess: () => setUploads(rows => rows.map(row => (row.key === key && row.state === 'uploading' ? { ...row, state: 'processing' } : row))),
        onError: message => patch(key, { state: 'failed', error: message })
      });
      setUploads(rows => [{ key, filename: file.name, sent: 0, total: file.size, state: 'uploading', upload }, ...rows]);
    }
  };

  const pause = (row: IUploadRow): void => {
    void row.upload.abort();
    patch(row.key, { state: 'paused' });
  };
  const resume = (row: IUploadRow): void => {
    row.upload.start();
    patch(row.key, { state: 'uploading', error: undefined });
  };

  return (
    <div className="ais-panel-body" data-testid="ais-datasets">
      <div
        className={`ais-dropzone${dragging ? ' ais-dragging' : ''}`}
        data-testid="ais-dropzone"
        onDragOver={e => {
          e.preventDefault();
          e.stopPropagation();
          e.dataTransfer.dropEffect = 'copy';
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={e => {
          e.preventDefault();
          e.stopPropagation();
          setDragging(false);
          if (e.dataTransfer.files.length) {
            add(e.dataTransfer.files);
          }
        }}
      >
        Drop CSV, Parquet, JSON or a zip of images here, or{' '}
        <button className="ais-link" onClick={() => input.current?.click()}>
          choose files
        </button>
        <input
          ref={input}
          type="file"
          multiple
          hidden
          data-testid="ais-upload-input"
          onChange={e => {
            if (e.target.files) {
              add(e.target.files);
              e.target.value = '';
            }
          }}
        />
      </div>
      {uploads.length > 0 && (
        <ul className="ais-list ais-uploads">
          {uploads.map(row => (
            <li key={row.key} className="ais-row" data-testid="ais-upload" data-state={row.state} data-upload-id={row.id}>
              <div className="ais-row-main">
                <span className="ais-name">{row.filename}</span>
                <span className="ais-badge">{row.state}</span>
              </div>
              <progress max={row.total || 1} value={row.sent} data-testid="ais-upload-progress" />
              <div className="ais-row-meta">
                {formatBytes(row.sent)} / {formatBytes(row.total)}
              </div>
              {(row.state === 'uploading' || row.state === 'paused') && (
                <div className="ais-row-actions">
                  {row.state === 'uploading' ? (
                    <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-upload-pause" onClick={() => pause(row)}>
                      Pause
                    </button>
                  ) : (
                    <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-upload-resume" onClick={() => resume(row)}>
                      Resume
                    </button>
                  )}
                </div>
              )}
              {row.error && (
                <div className="ais-inline-error" role="alert">
                  {row.error}
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      <div className="ais-toolbar">
        <input
          className="ais-search"
          type="search"
          placeholder="Search datasets"
          value={search}
          data-testid="ais-dataset-search"
          onChange={e => setSearch(e.target.value)}
        />
      </div>
      {notice && (
        <div className="ais-notice" data-testid="ais-notice">
          {notice}
        </div>
      )}
      {/* a failed search shows its error here; editing the search clears it */}
      <ErrorBoundary name="dataset-list" resetKeys={[q]}>
        <DatasetList studio={studio} q={q} version={version} onInserted={ok => setNotice(ok ? null : 'Open a notebook and select a cell to insert the snippet into.')} />
      </ErrorBoundary>
    </div>
  );
}
