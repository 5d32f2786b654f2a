import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { AgentsPanel } from './components/AgentsPanel';
import { ConnectionIndicator, StaleNote } from './components/Connection';
import { ErrorBoundary } from './components/ErrorBoundary';
import { DatasetsPanel } from './components/DatasetsPanel';
import { DeploymentsPanel } from './components/DeploymentsPanel';
import { JobsPanel } from './components/JobsPanel';
import { ModelsPanel } from './components/ModelsPanel';
import { UsagePanel } from './components/UsagePanel';
import { IStudio, PanelId, PANELS } from './studio';

function panelBody(id: PanelId, studio: IStudio): JSX.Element {
  switch (id) {
    case 'jobs':
      return <JobsPanel studio={studio} />;
    case 'datasets':
      return <DatasetsPanel studio={studio} />;
    case 'models':
      return <ModelsPanel studio={studio} />;
    case 'deployments':
      return <DeploymentsPanel studio={studio} />;
    case 'agents':
      return <AgentsPanel studio={studio} />;
    case 'usage':
      return <UsagePanel studio={studio} />;
  }
}

function Section(props: { id: PanelId; title: string; studio: IStudio; open: boolean; onToggle: () => void }): JSX.Element {
  return (
    <section className="ais-section" data-testid={`ais-section-${props.id}`} data-open={props.open}>
      <button className="ais-section-header" aria-expanded={props.open} data-testid={`ais-section-toggle-${props.id}`} onClick={props.onToggle}>
        <span className="ais-caret">{props.open ? '▾' : '▸'}</span>
        {props.title}
      </button>
      {props.open && (
        <>
          <StaleNote events={props.studio.events} name={props.id} />
          {/* one boundary per panel: a panel that fails never blanks the others; one that
              failed for the outage loads again when the events socket is back */}
          <ErrorBoundary name={props.id} retryOn={retry => props.studio.events.onReconnect(retry)}>
            {panelBody(props.id, props.studio)}
          </ErrorBoundary>
        </>
      )}
    </section>
  );
}

function Studio(props: { studio: IStudio }): JSX.Element {
  const visible = PANELS.filter(p => props.studio.settings.visiblePanels.includes(p.id));
  const [open, setOpen] = useState<Set<PanelId>>(new Set(visible.slice(0, 2).map(p => p.id)));
  const toggle = (id: PanelId): void =>
    setOpen(current => {
      const next = new Set(current);
      next.has(id) ? next.delete(id) : next.add(id);
      return next;
    });
  return (
    <div className="ais-sidebar" data-testid="ais-sidebar">
      <div className="ais-header">
        <span className="ais-title">AI Studio</span>
        <ConnectionIndicator events={props.studio.events} />
      </div>
      {visible.map(panel => (
        <Section key={panel.id} id={panel.id} title={panel.title} studio={props.studio} open={open.has(panel.id)} onToggle={() => toggle(panel.id)} />
      ))}
    </div>
  );
}

/** The left-sidebar widget; re-renders when the settings change. */
export class StudioSidebar extends ReactWidget {
  private _studio: IStudio;

  constructor(studio: IStudio) {
    super();
    this._studio = studio;
    this.id = 'aistudio-sidebar';
    this.addClass('ais-root');
  }

  set studio(studio: IStudio) {
    this._studio = studio;
    this.update();
  }

  render(): JSX.Element {
    // a settings change remounts: visible panels and intervals take effect at once
    return <Studio key={JSON.stringify(this._studio.settings)} studio={this._studio} />;
  }
}
