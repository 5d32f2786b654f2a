/**
 * Agent definitions: search, details, create, edit and delete. Agents shared by others are
 * shown read-only. Runs are not part of the API yet, so the panel shows none.
 */
import React, { useEffect, useState } from 'react';

import { ApiError } from '../api';
import { useDebounced, useLoad } from '../hooks';
import { formatTime, IStudio } from '../studio';
import { Agent, AgentCreate, AgentLimits, AgentPlanner, AGENT_PLANNERS, Visibility } from '../types';
import { ErrorBoundary } from './ErrorBoundary';

/** The schema's defaults (schemas/agents.py), prefilled so people see the bounds a run gets. */
export const DEFAULT_LIMITS: AgentLimits = { max_steps: 25, max_seconds: 600, max_tool_calls: 50, max_cost_usd: 1, max_gpus: 0 };
const LIMIT_LABELS: Record<keyof AgentLimits, string> = {
  max_steps: 'Max steps',
  max_seconds: 'Max seconds',
  max_tool_calls: 'Max tool calls',
  max_cost_usd: 'Max cost (USD)',
  max_gpus: 'Max GPUs'
};

/** Tool names as typed: separated by commas or whitespace. */
export function parseTools(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map(tool => tool.trim())
    .filter(Boolean);
}

/** A failure as `{field: message}`: each of the API's validation errors under the top-level
 * field it names (`tools.1: …` under `tools`), anything else under `''`. */
export function fieldErrors(failure: unknown): Record<string, string> {
  if (failure instanceof ApiError) {
    const errors = Array.isArray(failure.details.errors) ? (failure.details.errors as { loc?: unknown[]; msg?: string }[]) : [];
    const out: Record<string, string> = {};
    for (const error of errors) {
      const loc = Array.isArray(error.loc) ? error.loc.map(String) : [];
      const field = loc[0] ?? '';
      if (!(field in out)) {
        out[field] = loc.length ? `${loc.join('.')}: ${error.msg ?? 'invalid'}` : String(error.msg ?? failure.message);
      }
    }
    const named = typeof failure.details.field === 'string' ? failure.details.field : null;
    if (Object.keys(out).length === 0) {
      out[named ?? ''] = failure.message;
    }
    return out;
  }
  return { '': failure instanceof Error ? failure.message : String(failure) };
}

function FieldError(props: { errors: Record<string, string>; field: string; scope: string }): JSX.Element | null {
  const message = props.errors[props.field];
  if (!message) {
    return null;
  }
  return (
    <div className="ais-inline-error" role="alert" data-testid={`ais-${props.scope}-error-${props.field || 'form'}`}>
      {message}
    </div>
  );
}

/** Errors for fields the form does not show, under the form's own slot. */
function otherErrors(errors: Record<string, string>, shown: string[]): Record<string, string> {
  const rest = Object.entries(errors).filter(([field]) => !shown.includes(field));
  return rest.length ? { '': rest.map(([, message]) => message).join(' · ') } : {};
}

const CREATE_FIELDS = ['name', 'description', 'instructions', 'tools', 'planner', 'llm', 'limits', 'visibility', 'team'];

function CreateForm(props: { studio: IStudio; onCreated: (agent: Agent) => void; onCancel: () => void }): JSX.Element {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [instructions, setInstructions] = useState('');
  const [tools, setTools] = useState('');
  const [planner, setPlanner] = useState<AgentPlanner>('react');
  const [llm, setLlm] = useState('');
  const [visibility, setVisibility] = useState<Visibility>('private');
  const [team, setTeam] = useState('');
  const [limits, setLimits] = useState<Record<keyof AgentLimits, string>>(
    Object.fromEntries(Object.entries(DEFAULT_LIMITS).map(([key, value]) => [key, String(value)])) as Record<keyof AgentLimits, string>
  );
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});

  const submit = async (event: React.FormEvent): Promise<void> => {
    event.preventDefault();
    const body: AgentCreate = { name, description, instructions, tools: parseTools(tools), planner, visibility };
    if (llm.trim()) {
      body.llm = llm.trim();
    }
    if (visibility === 'team') {
      body.team = team.trim() || null;
    }
    const chosen: Partial<AgentLimits> = {};
    for (const [key, value] of Object.entries(limits) as [keyof AgentLimits, string][]) {
      if (value.trim() !== '') {
        chosen[key] = Number(value);
      }
    }
    body.limits = chosen;
    setBusy(true);
    setErrors({});
    try {
      props.onCreated(await props.studio.api.createAgent(body));
    } catch (failure) {
      setErrors(fieldErrors(failure));
    } finally {
      setBusy(false);
    }
  };

  const shownErrors = { ...errors, ...otherErrors(errors, CREATE_FIELDS) };
  const error = (field: string): JSX.Element => <FieldError errors={shownErrors} field={field} scope="agent" />;
  return (
    <form className="ais-form" data-testid="ais-agent-form" onSubmit={submit}>
      <label>
        Name
        <input data-testid="ais-agent-name" value={name} onChange={e => setName(e.target.value)} />
      </label>
      {error('name')}
      <label>
        Description
        <input data-testid="ais-agent-description" value={description} onChange={e => setDescription(e.target.value)} />
      </label>
      {error('description')}
      <label>
        Instructions
        <textarea data-testid="ais-agent-instructions" rows={4} value={instructions} onChange={e => setInstructions(e.target.value)} />
      </label>
      {error('instructions')}
      <label>
        Tools <span className="ais-hint">(comma-separated, e.g. search, python.run)</span>
        <input data-testid="ais-agent-tools" value={tools} onChange={e => setTools(e.target.value)} />
      </label>
      {error('tools')}
      <label>
        Planner
        <select data-testid="ais-agent-planner" value={planner} onChange={e => setPlanner(e.target.value as AgentPlanner)}>
          {AGENT_PLANNERS.map(p => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </label>
      {error('planner')}
      <label>
        LLM <span className="ais-hint">(optional)</span>
        <input data-testid="ais-agent-llm" value={llm} onChange={e => setLlm(e.target.value)} />
      </label>
      {error('llm')}
      <label>
        Visibility
        <select data-testid="ais-agent-visibility" value={visibility} onChange={e => setVisibility(e.target.value as Visibility)}>
          <option value="private">private</option>
          <option value="team">team</option>
          <option value="public">public</option>
        </select>
      </label>
      {error('visibility')}
      {visibility === 'team' && (
        <label>
          Team
          <input data-testid="ais-agent-team" value={team} onChange={e => setTeam(e.target.value)} />
        </label>
      )}
      {error('team')}
      <details>
        <summary>Limits</summary>
        {(Object.keys(LIMIT_LABELS) as (keyof AgentLimits)[]).map(key => (
          <label key={key}>
            {LIMIT_LABELS[key]}
            <input
              type="number"
              data-testid={`ais-agent-limit-${key}`}
              value={limits[key]}
              onChange={e => setLimits(current => ({ ...current, [key]: e.target.value }))}
            />
          </label>
        ))}
      </details>
      {error('limits')}
      {error('')}
      <div className="ais-row-actions">
        <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept ais-small" data-testid="ais-agent-create" disabled={busy}>
          Create
        </button>
        <button type="button" className="jp-Button jp-mod-styled ais-small" data-testid="ais-agent-create-cancel" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function EditForm(props: { studio: IStudio; agent: Agent; onSaved: (agent: Agent) => void; onCancel: () => void }): JSX.Element {
  const [description, setDescription] = useState(props.agent.description);
  const [instructions, setInstructions] = useState(props.agent.instructions);
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const save = async (event: React.FormEvent): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setErrors({});
    try {
      props.onSaved(await props.studio.api.updateAgent(props.agent.id, { description, instructions }));
    } catch (failure) {
      setErrors(fieldErrors(failure));
    } finally {
      setBusy(false);
    }
  };
  const shownErrors = { ...errors, ...otherErrors(errors, ['description', 'instructions']) };
  return (
    <form className="ais-form" data-testid="ais-agent-edit-form" onSubmit={save}>
      <label>
        Description
        <input data-testid="ais-agent-edit-description" value={description} onChange={e => setDescription(e.target.value)} />
      </label>
      <FieldError errors={shownErrors} field="description" scope="agent-edit" />
      <label>
        Instructions
        <textarea data-testid="ais-agent-edit-instructions" rows={6} value={instructions} onChange={e => setInstructions(e.target.value)} />
      </label>
      <FieldError errors={shownErrors} field="instructions" scope="agent-edit" />
      <FieldError errors={shownErrors} field="" scope="agent-edit" />
      <div className="ais-row-actions">
        <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept ais-small" data-testid="ais-agent-save" disabled={busy}>
          Save
        </button>
        <button type="button" className="jp-Button jp-mod-styled ais-small" data-testid="ais-agent-edit-cancel" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Details(props: { agent: Agent }): JSX.Element {
  const { agent } = props;
  return (
    <dl className="ais-details" data-testid="ais-agent-details">
      {agent.description && (
        <>
          <dt>Description</dt>
          <dd data-testid="ais-agent-detail-description">{agent.description}</dd>
        </>
      )}
      <dt>Instructions</dt>
      <dd>
        {agent.instructions ? (
          <pre className="ais-logs-text" data-testid="ais-agent-detail-instructions">
            {agent.instructions}
          </pre>
        ) : (
          <span className="ais-row-meta">none</span>
        )}
      </dd>
      <dt>Tools</dt>
      <dd data-testid="ais-agent-detail-tools">
        {agent.tools.length
          ? agent.tools.map(tool => (
              <span key={tool} className="ais-badge ais-tool">
                {tool}
              </span>
            ))
          : 'none'}
      </dd>
      <dt>Planner</dt>
      <dd data-testid="ais-agent-detail-planner">
        {agent.planner}
        {agent.llm ? ` · ${agent.llm}` : ''}
      </dd>
      <dt>Limits</dt>
      <dd data-testid="ais-agent-detail-limits">
        {(Object.keys(LIMIT_LABELS) as (keyof AgentLimits)[])
          .filter(key => agent.limits && key in agent.limits)
          .map(key => `${LIMIT_LABELS[key].toLowerCase()} ${agent.limits[key]}`)
          .join(' · ')}
      </dd>
      <dt>Visibility</dt>
      <dd data-testid="ais-agent-detail-visibility">
        {agent.visibility}
        {agent.team ? ` (team ${agent.team})` : ''}
      </dd>
      <dt>Created</dt>
      <dd>{formatTime(agent.created_at)}</dd>
      <dt>Updated</dt>
      <dd>{formatTime(agent.updated_at)}</dd>
    </dl>
  );
}

function AgentRow(props: { studio: IStudio; agent: Agent; me: string | null; onChanged: () => void }): JSX.Element {
  const [agent, setAgent] = useState(props.agent);
  const [open, setOpen] = useState(false);
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setAgent(props.agent), [props.agent]);
  // someone else's shared agent: readable, not ours to change (unknown identity: the server decides)
  const mine = props.me === null || agent.owner === props.me;

  const remove = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await props.studio.api.deleteAgent(agent.id);
      props.onChanged();
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
      setBusy(false);
    }
  };

  return (
    <li className="ais-row" data-testid={`ais-agent-${agent.id}`} data-name={agent.name}>
      <div className="ais-row-main">
        <span className="ais-name" title={agent.id}>
          {agent.name}
        </span>
        {!mine && (
          <span className="ais-badge" data-testid="ais-agent-shared" title="Shared with you: read-only">
            {agent.owner}
          </span>
        )}
        <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-agent-toggle" aria-expanded={open} onClick={() => setOpen(o => !o)}>
          {open ? 'Hide' : 'Details'}
        </button>
      </div>
      <div className="ais-row-meta">
        {agent.planner} · {agent.tools.length} tool{agent.tools.length === 1 ? '' : 's'} · {formatTime(agent.updated_at ?? agent.created_at)}
      </div>
      {open && (
        <div className="ais-agent-body">
          {editing ? (
            <EditForm
              studio={props.studio}
              agent={agent}
              onCancel={() => setEditing(false)}
              onSaved={saved => {
                setAgent(saved);
                setEditing(false);
                props.onChanged();
              }}
            />
          ) : (
            <Details agent={agent} />
          )}
          {!mine && (
            <div className="ais-row-meta" data-testid="ais-agent-readonly">
              Shared by {agent.owner}: read-only.
            </div>
          )}
          {mine && !editing && !confirming && (
            <div className="ais-row-actions">
              <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-agent-edit" onClick={() => setEditing(true)}>
                Edit
              </button>
              <button className="jp-Button jp-mod-styled jp-mod-warn ais-small" data-testid="ais-agent-delete" onClick={() => setConfirming(true)}>
                Delete
              </button>
            </div>
          )}
          {confirming && (
            <div className="ais-confirm" role="alertdialog" data-testid="ais-agent-confirm">
              <span>Delete {agent.name}? This cannot be undone.</span>
              <div className="ais-row-actions">
                <button className="jp-Button jp-mod-styled jp-mod-warn ais-small" data-testid="ais-agent-delete-confirm" disabled={busy} onClick={remove}>
                  Delete
                </button>
                <button className="jp-Button jp-mod-styled ais-small" data-testid="ais-agent-delete-cancel" disabled={busy} onClick={() => setConfirming(false)}>
                  Cancel
                </button>
              </div>
            </div>
          )}
          {error !== null && (
            <div className="ais-inline-error" role="alert" data-testid="ais-agent-row-error">
              {error}
            </div>
          )}
        </div>
      )}
    </li>
  );
}

function AgentList(props: { studio: IStudio; q: string; version: number; me: string | null; onChanged: () => void }): JSX.Element {
  const listed = useLoad(() => props.studio.api.agents({ q: props.q || undefined }), [props.q, props.version], props.studio.settings.refreshInterval);
  if (!listed.data) {
    return <div className="ais-empty">Loading…</div>;
  }
  if (listed.data.length === 0) {
    return (
      <div className="ais-empty" data-testid="ais-agents-empty">
        {props.q ? 'No agent matches the search.' : 'No agents defined yet.'}
      </div>
    );
  }
  return (
    <ul className="ais-list" data-testid="ais-agents">
      {listed.data.map(agent => (
        <AgentRow key={agent.id} studio={props.studio} agent={agent} me={props.me} onChanged={props.onChanged} />
      ))}
    </ul>
  );
}

export function AgentsPanel(props: { studio: IStudio }): JSX.Element {
  const { studio } = props;
  const [search, setSearch] = useState('');
  const q = useDebounced(search.trim(), 300);
  const [version, setVersion] = useState(0);
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [me, setMe] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    // who we are decides which agents are read-only; without it every row offers its actions
    // and the server refuses what is not ours
    studio.api.me().then(
      who => live && setMe(who.username),
      () => undefined
    );
    return () => {
      live = false;
    };
  }, []);

  return (
    <div className="ais-panel-body" data-testid="ais-agents-panel">
      <div className="ais-toolbar">
        <input
          className="ais-search"
          type="search"
          placeholder="Search agents"
          value={search}
          data-testid="ais-agent-search"
          onChange={e => setSearch(e.target.value)}
        />
        {!creating && (
          <button
            className="jp-Button jp-mod-styled jp-mod-accept ais-small"
            data-testid="ais-agent-new"
            onClick={() => {
              setNotice(null);
              setCreating(true);
            }}
          >
            New agent
          </button>
        )}
      </div>
      {creating && (
        <CreateForm
          studio={studio}
          onCancel={() => setCreating(false)}
          onCreated={agent => {
            setCreating(false);
            setNotice(`Created ${agent.name}`);
            setVersion(v => v + 1);
          }}
        />
      )}
      {notice && (
        <div className="ais-notice" data-testid="ais-agent-notice">
          {notice}
        </div>
      )}
      <ErrorBoundary name="agent-list" resetKeys={[q, version]}>
        <AgentList studio={studio} q={q} version={version} me={me} onChanged={() => setVersion(v => v + 1)} />
      </ErrorBoundary>
    </div>
  );
}
