/**
 * The DOM fixture the component tests share: each test renders into a fresh React root in a
 * container attached to the page, unmounted and removed after it.
 */
import { act } from 'react';
import { createRoot, Root } from 'react-dom/client';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

export interface IDom {
  container: HTMLDivElement;
  root: Root;
}

/** Registers the per-test set-up and tear-down in the calling scope (file or describe). */
export function domFixture(): IDom {
  const dom = {} as IDom;
  beforeEach(() => {
    dom.container = document.createElement('div');
    document.body.appendChild(dom.container);
    dom.root = createRoot(dom.container);
  });
  afterEach(() => {
    act(() => dom.root.unmount());
    dom.container.remove();
  });
  return dom;
}

/** The element with `data-testid=id`, or null. */
export function queryTestId(id: string, within: ParentNode = document.body): HTMLElement | null {
  return within.querySelector(`[data-testid="${id}"]`);
}

/** The element with `data-testid=id`; throws when there is none, naming it. */
export function byTestId(id: string, within: ParentNode = document.body): HTMLElement {
  const found = queryTestId(id, within);
  if (!found) {
    throw new Error(`no ${id}`);
  }
  return found;
}

/** Lets pending promises, timers of `ms` and React's updates run. */
export async function flush(ms = 0): Promise<void> {
  await act(async () => {
    await new Promise(resolve => setTimeout(resolve, ms));
  });
}
