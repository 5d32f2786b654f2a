/**
 * @jest-environment jsdom
 *
 * The Agents panel: definitions with their details, created from a form that shows the API's
 * 422 under the field it names, edited, deleted only after a confirmation, and other people's
 * shared agents read-only.
 */
import React from 'react';
import { act } from 'react';

import { ApiError } from '../api';
import { AgentsPanel, fieldErrors, parseTools } from '../components/AgentsPanel';
import { DEFAULT_SETTINGS, IStudio } from '../studio';
import type { Agent } from '../types';
import { byTestId, domFixture, flush, queryTestId } from './dom';

const LIMITS = { max_steps: 25, max_seconds: 600, max_tool_calls: 50, max_cost_usd: 1, max_gpus: 0 };

function agent(id: string, name: string, extra: Partial<Agent> = {}): Agent {
  return {
    id,
    owner: 'alice',
    name,
    description: '',
    instructions: '',
    tools: [],
    planner: 'react',
    llm: null,
    limits: LIMITS,
    visibility: 'private',
    team: null,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...extra
  };
}

const dom = domFixture();

/** Types into a controlled input or textarea the way React notices. */
function type(element: HTMLElement, value: string): void {
  const prototype = element instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  act(() => {
    Object.getOwnPropertyDescriptor(prototype, 'value')!.set!.call(element, value);
    element.dispatchEvent(new Event('input', { bubbles: true }));
  });
}

function studioWith(api: Record<string, jest.Mock>): IStudio {
  return {
    api: { me: jest.fn().mockResolvedValue({ username: 'alice' }), ...api },
    events: { subscribe: jest.fn(() => () => undefined) },
    settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 },
    insertSnippet: () => false
  } as unknown as IStudio;
}

test('parseTools and fieldErrors', () => {
  expect(parseTools(' search, python.run\nsql ,, ')).toEqual(['search', 'python.run', 'sql']);
  const failure = new ApiError({
    status: 422,
    code: 'invalid',
    message: 'tools.1: String should match pattern',
    details: { errors: [{ loc: ['tools', 1], msg: "String should match pattern '^[a-z][a-z0-9_.]*$'" }] }
  });
  expect(fieldErrors(failure)).toEqual({ tools: "tools.1: String should match pattern '^[a-z][a-z0-9_.]*$'" });
  expect(fieldErrors(new ApiError({ status: 409, code: 'conflict', message: 'You already have an agent named x', details: { field: 'name' } }))).toEqual({
    name: 'You already have an agent named x'
  });
  expect(fieldErrors(new Error('boom'))).toEqual({ '': 'boom' });
});

test('create shows the 422 under the field it names, then creates and lists the agent', async () => {
  const created = agent('agt_2', 'triage', { tools: ['search', 'python.run'], instructions: 'Sort the tickets.' });
  const api = {
    agents: jest.fn().mockResolvedValueOnce([]).mockResolvedValue([created]),
    createAgent: jest
      .fn()
      .mockRejectedValueOnce(
        new ApiError({
          status: 422,
          code: 'invalid',
          message: 'tools.1: String should match pattern',
          details: { errors: [{ loc: ['tools', 1], msg: "String should match pattern '^[a-z][a-z0-9_.]*$'", type: 'string_pattern_mismatch' }] }
        })
      )
      .mockResolvedValueOnce(created)
  };
  act(() => dom.root.render(<AgentsPanel studio={studioWith(api)} />));
  await flush();
  expect(byTestId('ais-agents-empty').textContent).toBe('No agents defined yet.');
  act(() => byTestId('ais-agent-new').click());
  type(byTestId('ais-agent-name'), 'triage');
  type(byTestId('ais-agent-instructions'), 'Sort the tickets.');
  type(byTestId('ais-agent-tools'), 'search, Python Run');
  act(() => byTestId('ais-agent-create').click());
  await flush();
  expect(api.createAgent).toHaveBeenLastCalledWith(
    expect.objectContaining({ name: 'triage', instructions: 'Sort the tickets.', tools: ['search', 'Python', 'Run'], planner: 'react', visibility: 'private', limits: LIMITS })
  );
  expect(byTestId('ais-agent-error-tools').textContent).toContain('tools.1');
  expect(queryTestId('ais-agent-error-name')).toBeNull();
  // still open with what was typed, for a fix
  expect((byTestId('ais-agent-name') as HTMLInputElement).value).toBe('triage');

  type(byTestId('ais-agent-tools'), 'search, python.run');
  act(() => byTestId('ais-agent-create').click());
  await flush();
  expect(queryTestId('ais-agent-form')).toBeNull();
  expect(byTestId('ais-agent-notice').textContent).toBe('Created triage');
  const row = byTestId('ais-agent-agt_2');
  act(() => byTestId('ais-agent-toggle', row).click());
  expect(byTestId('ais-agent-detail-instructions', row).textContent).toBe('Sort the tickets.');
  expect(byTestId('ais-agent-detail-tools', row).textContent).toBe('searchpython.run');
});

test('delete asks first; only the confirmation deletes', async () => {
  const doomed = agent('agt_1', 'doomed');
  const api = {
    agents: jest.fn().mockResolvedValueOnce([doomed]).mockResolvedValue([]),
    deleteAgent: jest.fn().mockResolvedValue(undefined)
  };
  act(() => dom.root.render(<AgentsPanel studio={studioWith(api)} />));
  await flush();
  const row = byTestId('ais-agent-agt_1');
  act(() => byTestId('ais-agent-toggle', row).click());
  act(() => byTestId('ais-agent-delete', row).click());
  expect(api.deleteAgent).not.toHaveBeenCalled();
  expect(byTestId('ais-agent-confirm', row).textContent).toContain('Delete doomed?');
  act(() => byTestId('ais-agent-delete-cancel', row).click());
  expect(queryTestId('ais-agent-confirm', row)).toBeNull();
  expect(api.deleteAgent).not.toHaveBeenCalled();

  act(() => byTestId('ais-agent-delete', row).click());
  act(() => byTestId('ais-agent-delete-confirm', row).click());
  await flush();
  expect(api.deleteAgent).toHaveBeenCalledWith('agt_1');
  expect(queryTestId('ais-agent-agt_1')).toBeNull();
  expect(byTestId('ais-agents-empty')).toBeTruthy();
});

test('edit changes instructions and description; instructions stay text, never markup', async () => {
  const original = agent('agt_1', 'writer', { instructions: '<b>bold</b>' });
  const saved = { ...original, instructions: '<img src=x onerror=alert(1)>', description: 'writes' };
  const api = { agents: jest.fn().mockResolvedValue([original]), updateAgent: jest.fn().mockResolvedValue(saved) };
  act(() => dom.root.render(<AgentsPanel studio={studioWith(api)} />));
  await flush();
  const row = byTestId('ais-agent-agt_1');
  act(() => byTestId('ais-agent-toggle', row).click());
  expect(byTestId('ais-agent-detail-instructions', row).textContent).toBe('<b>bold</b>');
  expect(row.querySelector('b')).toBeNull();
  act(() => byTestId('ais-agent-edit', row).click());
  type(byTestId('ais-agent-edit-instructions', row), saved.instructions);
  type(byTestId('ais-agent-edit-description', row), 'writes');
  act(() => byTestId('ais-agent-save', row).click());
  await flush();
  expect(api.updateAgent).toHaveBeenCalledWith('agt_1', { description: 'writes', instructions: saved.instructions });
  expect(byTestId('ais-agent-detail-instructions', row).textContent).toBe(saved.instructions);
  expect(row.querySelector('img')).toBeNull();
});

test("another user's shared agent is read-only", async () => {
  const shared = agent('agt_9', 'team helper', { owner: 'bob', visibility: 'public' });
  const api = { agents: jest.fn().mockResolvedValue([shared]) };
  act(() => dom.root.render(<AgentsPanel studio={studioWith(api)} />));
  await flush();
  const row = byTestId('ais-agent-agt_9');
  expect(byTestId('ais-agent-shared', row).textContent).toBe('bob');
  act(() => byTestId('ais-agent-toggle', row).click());
  expect(byTestId('ais-agent-readonly', row).textContent).toContain('read-only');
  expect(queryTestId('ais-agent-edit', row)).toBeNull();
  expect(queryTestId('ais-agent-delete', row)).toBeNull();
});

test('the search asks the API by name', async () => {
  jest.useFakeTimers();
  try {
    const api = { agents: jest.fn().mockResolvedValue([]) };
    act(() => dom.root.render(<AgentsPanel studio={studioWith(api)} />));
    type(byTestId('ais-agent-search'), 'tri');
    await act(async () => {
      jest.advanceTimersByTime(400);
    });
    expect(api.agents).toHaveBeenLastCalledWith({ q: 'tri' });
  } finally {
    jest.useRealTimers();
  }
});
