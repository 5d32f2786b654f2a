import { useCallback, useEffect, useRef, useState } from 'react';

interface ILoad<T> {
  data: T | undefined;
  loading: boolean;
  /** Load again; the shown data stays until the new answer arrives. */
  reload: () => void;
}

/**
 * Loads with `loader` when `deps` change, and every `refreshSeconds` (0: never).
 * A failed load is thrown during render so the panel's ErrorBoundary shows it with Retry,
 * instead of the panel going blank.
 */
export function useLoad<T>(loader: () => Promise<T>, deps: unknown[], refreshSeconds = 0): ILoad<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const latest = useRef(0);

  useEffect(() => {
    const call = ++latest.current;
    setLoading(true);
    loader().then(
      value => {
        if (call === latest.current) {
          setData(value);
          setLoading(false);
        }
      },
      failure => {
        if (call === latest.current) {
          setError(failure);
          setLoading(false);
        }
      }
    );
    return () => {
      latest.current += 1; // answers of an older call are dropped
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);

  useEffect(() => {
    if (!refreshSeconds) {
      return;
    }
    const timer = setInterval(() => setTick(t => t + 1), refreshSeconds * 1000);
    return () => clearInterval(timer);
  }, [refreshSeconds]);

  const reload = useCallback(() => setTick(t => t + 1), []);
  if (error) {
    throw error;
  }
  return { data, loading, reload };
}

/** `value`, once it stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}
