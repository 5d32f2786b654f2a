/**
 * The live-events connection as the user sees it: the indicator in the sidebar's header and,
 * while the connection is down, a note on each open panel that its data may be out of date.
 * Panels are kept current by events, so without them they must not pretend to be live.
 */
import React, { useEffect, useState } from 'react';

import type { ConnectionState, EventsClient } from '../events';

type Events = Pick<EventsClient, 'state' | 'disconnectedAt' | 'onState' | 'reconnectNow'>;

const LABELS: Record<ConnectionState, string> = {
  open: 'live',
  connecting: 'connecting…',
  reconnecting: 'reconnecting…',
  closed: 'offline'
};

/** The connection state, re-rendered on every change. */
export function useConnectionState(events: Events): ConnectionState {
  const [state, setState] = useState<ConnectionState>(events.state);
  useEffect(() => {
    setState(events.state); // it may have changed between the render and this effect
    return events.onState(setState);
  }, [events]);
  return state;
}

/** `HH:MM` in the user's locale. */
export function clockTime(date: Date): string {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** live / connecting… / reconnecting… / offline; while not live a click retries at once. */
export function ConnectionIndicator(props: { events: Events }): JSX.Element {
  const state = useConnectionState(props.events);
  const label = LABELS[state];
  if (state === 'open') {
    return (
      <span className="ais-connection ais-connection-open" data-testid="ais-connection" data-state={state} title="Live events: connected">
        {label}
      </span>
    );
  }
  const since = props.events.disconnectedAt;
  return (
    <button
      className={`ais-connection ais-connection-${state}`}
      data-testid="ais-connection"
      data-state={state}
      role="status"
      title={`Live events: ${state}${since ? ` since ${clockTime(since)}` : ''}. Click to try now.`}
      onClick={() => props.events.reconnectNow()}
    >
      {label}
    </button>
  );
}

/** Shown on an open panel while the events connection is down after having been live. */
export function StaleNote(props: { events: Events; name: string }): JSX.Element | null {
  const state = useConnectionState(props.events);
  const since = props.events.disconnectedAt;
  if (state === 'open' || !since) {
    return null;
  }
  return (
    <div className="ais-stale" role="status" data-testid={`ais-stale-${props.name}`}>
      offline — showing data from {clockTime(since)}
    </div>
  );
}
