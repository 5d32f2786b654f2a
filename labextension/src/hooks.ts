import { useCallback, useEffect, useRef, useState } from 'react';

import type { IStudio } from './studio';
import type { StudioEvent } from './types';

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

/** The signed-in user's name per API client: asked of `/me` once, shared by every panel. */
const usernames = new WeakMap<object, Promise<string>>();
const knownUsernames = new WeakMap<object, string>();

function whoAmI(studio: IStudio): Promise<string> {
  let found = usernames.get(studio.api);
  if (!found) {
    found = Promise.resolve()
      .then(() => studio.api.me())
      .then(me => {
        knownUsernames.set(studio.api, me.username);
        return me.username;
      });
    // a failure is not remembered: the next panel to mount asks again
    found.catch(() => usernames.delete(studio.api));
    usernames.set(studio.api, found);
  }
  return found;
}

/**
 * Calls `onEvent` for each event of one of `types` (`dataset`, `model`, `deployment`, `job`)
 * on the user's own topic `user:<me>`: one subscription for a whole list, whatever its length.
 * `onSubscribed` runs each time the subscription starts. Returns the username once known;
 * while `/me` fails there are no live events (the panels' timer refresh still runs).
 */
export function useUserEvents(
  studio: IStudio,
  types: readonly string[],
  onEvent: (event: StudioEvent) => void,
  onSubscribed?: () => void
): string | undefined {
  const [user, setUser] = useState<string | undefined>(() => knownUsernames.get(studio.api));
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const started = useRef(onSubscribed);
  started.current = onSubscribed;
  const key = types.join(',');

  useEffect(() => {
    if (user) {
      return;
    }
    let live = true;
    whoAmI(studio).then(
      name => live && setUser(name),
      () => undefined
    );
    return () => {
      live = false;
    };
  }, [studio.api]);

  useEffect(() => {
    if (!user) {
      return;
    }
    const wanted = key.split(',');
    const stop = studio.events.subscribe(`user:${user}`, event => {
      if (wanted.includes(event.type)) {
        handler.current(event);
      }
    });
    started.current?.();
    return stop;
  }, [user, studio.events, key]);
  return user;
}

/**
 * A number that changes when the user's topic announced a change to one of `types` (and that
 * `accept` keeps): put it in a list's `useLoad` deps and the list reloads. Bursts (a rollout, a
 * bulk import) are one reload at most every `delayMs`.
 *
 * Call it before the list's `useLoad`, so the subscription is made before the list is asked
 * for and no change between the two is missed. When the username was not known yet at mount
 * (the first panel to open), the subscription starts after that first load: the number then
 * changes once more, and the list is read again.
 */
export function useUserChanges(
  studio: IStudio,
  types: readonly string[],
  options: { delayMs?: number; accept?: (event: StudioEvent) => boolean } = {}
): number {
  const { delayMs = 300, accept } = options;
  const [generation, setGeneration] = useState(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const subscribedAtMount = useRef(knownUsernames.has(studio.api));
  const schedule = (): void => {
    if (timer.current === null) {
      timer.current = setTimeout(() => {
        timer.current = null;
        setGeneration(g => g + 1);
      }, delayMs);
    }
  };
  useEffect(
    () => () => {
      if (timer.current !== null) {
        clearTimeout(timer.current);
        timer.current = null;
      }
    },
    []
  );
  useUserEvents(
    studio,
    // `resync`: the events client missed events for good (pruned, a fresh server): list again
    [...types, 'resync'],
    event => {
      if (event.type === 'resync' || !accept || accept(event)) {
        schedule();
      }
    },
    () => {
      if (subscribedAtMount.current) {
        subscribedAtMount.current = false; // a later resubscription (another user) reloads
      } else {
        setGeneration(g => g + 1);
      }
    }
  );
  return generation;
}
