/**
 * @jest-environment jsdom
 *
 * The error boundary and the loading hook, rendered with React DOM: a failed load shows the
 * server's message (as text) with Retry, Retry loads again, and a sibling keeps working.
 */
import React from 'react';
import { act } from 'react';

import { ApiError } from '../api';
import { ErrorBoundary } from '../components/ErrorBoundary';
import { useLoad } from '../hooks';
import { byTestId, domFixture, flush, queryTestId } from './dom';

const dom = domFixture();

beforeEach(() => {
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  jest.restoreAllMocks();
});

function Loader(props: { load: () => Promise<string> }): JSX.Element {
  const { data } = useLoad(props.load, []);
  return <span data-testid="loaded">{data ?? 'loading'}</span>;
}

test('a failed load shows the envelope message as text, and Retry loads again', async () => {
  const markup = '<img src=x onerror="window.pwned=1">';
  const load = jest
    .fn<Promise<string>, []>()
    .mockRejectedValueOnce(new ApiError({ status: 503, code: 'unavailable', message: `Database down ${markup}`, requestId: 'r-9' }))
    .mockResolvedValueOnce('three datasets');
  act(() =>
    dom.root.render(
      <div>
        <ErrorBoundary name="datasets">
          <Loader load={load} />
        </ErrorBoundary>
        <ErrorBoundary name="jobs">
          <span data-testid="sibling">jobs fine</span>
        </ErrorBoundary>
      </div>
    )
  );
  await flush();
  const error = queryTestId('ais-error-datasets');
  expect(error).not.toBeNull();
  expect(byTestId('ais-error-message').textContent).toBe(`Database down ${markup}`);
  expect(error!.textContent).toContain('AI Studio is unavailable');
  expect(error!.textContent).toContain('request r-9');
  // the user-controlled string stayed text: no element was created from it
  expect(dom.container.querySelector('img')).toBeNull();
  expect(byTestId('sibling').textContent).toBe('jobs fine');

  act(() => byTestId('ais-retry').click());
  await flush();
  expect(queryTestId('ais-error-datasets')).toBeNull();
  expect(byTestId('loaded').textContent).toBe('three datasets');
  expect(load).toHaveBeenCalledTimes(2);
});

test('a render crash that is not an API error still shows a message, not a blank panel', async () => {
  function Broken(): JSX.Element {
    throw new TypeError("Cannot read properties of undefined (reading 'items')");
  }
  act(() =>
    dom.root.render(
      <ErrorBoundary name="models">
        <Broken />
      </ErrorBoundary>
    )
  );
  await flush();
  expect(byTestId('ais-error-models').textContent).toContain('Something went wrong');
  expect(byTestId('ais-error-message').textContent).toContain("reading 'items'");
});

test('changing a reset key clears the error without Retry', async () => {
  function Search(props: { q: string }): JSX.Element {
    const { data } = useLoad(
      () => (props.q.length > 3 ? Promise.reject(new ApiError({ status: 422, code: 'invalid', message: 'q: too long' })) : Promise.resolve(`results for ${props.q}`)),
      [props.q]
    );
    return <span data-testid="results">{data ?? ''}</span>;
  }
  const view = (q: string): JSX.Element => (
    <ErrorBoundary name="list" resetKeys={[q]}>
      <Search q={q} />
    </ErrorBoundary>
  );
  act(() => dom.root.render(view('toolong')));
  await flush();
  expect(byTestId('ais-error-message').textContent).toBe('q: too long');
  act(() => dom.root.render(view('ok')));
  await flush();
  expect(queryTestId('ais-error-list')).toBeNull();
  expect(byTestId('results').textContent).toBe('results for ok');
});
