import React from 'react';

import { ApiError } from '../api';

type RetryOn = (retry: () => void) => () => void;

/** An outer boundary's `retryOn`, inherited by the boundaries a panel nests inside itself. */
const RetryOnContext = React.createContext<RetryOn | undefined>(undefined);

interface IProps {
  /** Which panel this guards, for the message and the test ids. */
  name: string;
  /** A change of any of these clears a shown error (a new search, a new filter). */
  resetKeys?: unknown[];
  /**
   * Subscribes to a moment worth retrying at (the events socket live again after an outage);
   * returns the unsubscribe. A shown error that may pass (network, 5xx, 429) is then retried
   * without the user's click; one that will not (403, 422) stays. Inherited by nested
   * boundaries that set none.
   */
  retryOn?: RetryOn;
  children?: React.ReactNode;
}

interface IState {
  error: Error | null;
  /** Bumped by Retry: remounts the children, so they load again from scratch. */
  attempt: number;
}

/** The words to show for a failure: the API envelope's message when there is one. */
export function describeError(error: unknown): { title: string; message: string; detail: string | null } {
  if (error instanceof ApiError) {
    const title =
      error.status === 0
        ? 'AI Studio is unreachable'
        : error.status >= 500
          ? 'AI Studio is unavailable'
          : error.status === 403 || error.status === 401
            ? 'Not allowed'
            : 'The request failed';
    const parts = [error.code, error.status ? `HTTP ${error.status}` : null, error.requestId ? `request ${error.requestId}` : null];
    return { title, message: error.message, detail: parts.filter(Boolean).join(' · ') };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { title: 'Something went wrong', message, detail: null };
}

export function ErrorBox(props: { name: string; error: unknown; onRetry?: () => void }): JSX.Element {
  const { title, message, detail } = describeError(props.error);
  // every string is a React text child: escaped, never parsed as HTML
  return (
    <div className="ais-error" role="alert" data-testid={`ais-error-${props.name}`}>
      <div className="ais-error-title">{title}</div>
      <div className="ais-error-message" data-testid="ais-error-message">
        {message}
      </div>
      {detail && <div className="ais-error-detail">{detail}</div>}
      {props.onRetry && (
        <button className="jp-Button jp-mod-styled jp-mod-accept ais-retry" data-testid="ais-retry" onClick={props.onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** Catches whatever a panel throws while rendering (a failed load included) and offers Retry. */
export class ErrorBoundary extends React.Component<IProps, IState> {
  static contextType = RetryOnContext;
  declare context: React.ContextType<typeof RetryOnContext>;
  state: IState = { error: null, attempt: 0 };

  static getDerivedStateFromError(error: Error): Partial<IState> {
    return { error };
  }

  private _stopRetryOn: (() => void) | null = null;

  componentDidMount(): void {
    this._stopRetryOn =
      this._retryOn()?.(() => {
        const { error } = this.state;
        if (error instanceof ApiError && error.retryable) {
          this.retry();
        }
      }) ?? null;
  }

  private _retryOn(): RetryOn | undefined {
    return this.props.retryOn ?? this.context;
  }

  componentWillUnmount(): void {
    this._stopRetryOn?.();
    this._stopRetryOn = null;
  }

  componentDidUpdate(previous: IProps): void {
    const before = previous.resetKeys ?? [];
    const now = this.props.resetKeys ?? [];
    if (this.state.error && (before.length !== now.length || before.some((key, i) => !Object.is(key, now[i])))) {
      this.setState({ error: null });
    }
  }

  componentDidCatch(error: Error): void {
    if (!(error instanceof ApiError)) {
      console.error(`AI Studio ${this.props.name} panel failed`, error);
    }
  }

  retry = (): void => {
    this.setState(state => ({ error: null, attempt: state.attempt + 1 }));
  };

  render(): React.ReactNode {
    if (this.state.error) {
      return <ErrorBox name={this.props.name} error={this.state.error} onRetry={this.retry} />;
    }
    return (
      <RetryOnContext.Provider value={this._retryOn()}>
        <React.Fragment key={this.state.attempt}>{this.props.children}</React.Fragment>
      </RetryOnContext.Provider>
    );
  }
}
