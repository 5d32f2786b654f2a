import React from 'react';

import { useLoad } from '../hooks';
import { formatTime, IStudio } from '../studio';

interface IItem {
  id: string;
  name?: string;
  state?: string;
  status?: string;
  latest_version?: number;
  created_at?: string;
  updated_at?: string;
}

/** A plain, periodically refreshed list of a collection (models, deployments, agents). */
export function ListPanel(props: { studio: IStudio; path: string; name: string; empty: string }): JSX.Element {
  const listed = useLoad(() => props.studio.api.list<IItem>(props.path), [props.path], props.studio.settings.refreshInterval);
  if (!listed.data) {
    return <div className="ais-empty">Loading…</div>;
  }
  if (listed.data.length === 0) {
    return (
      <div className="ais-empty" data-testid={`ais-${props.name}-empty`}>
        {props.empty}
      </div>
    );
  }
  return (
    <ul className="ais-list" data-testid={`ais-${props.name}`}>
      {listed.data.map(item => {
        const state = item.state ?? item.status;
        return (
          <li key={item.id} className="ais-row" data-testid={`ais-${props.name}-${item.id}`}>
            <div className="ais-row-main">
              <span className="ais-name" title={item.id}>
                {item.name ?? item.id}
              </span>
              {state && <span className={`ais-badge ais-state-${state}`}>{state}</span>}
            </div>
            <div className="ais-row-meta">
              {typeof item.latest_version === 'number' ? `v${item.latest_version} · ` : ''}
              {formatTime(item.updated_at ?? item.created_at)}
            </div>
          </li>
        );
      })}
    </ul>
  );
}
