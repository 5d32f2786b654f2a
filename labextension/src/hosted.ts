/**
 * The notebook's training monitor and dataset explorer in JupyterLab's main area, without a kernel.
 *
 * Both widgets are anywidget ES modules that already do their live work in the browser (REST and
 * the events WebSocket); a kernel only hands them their first state through anywidget's model.
 * Here the server sends the very module text anywidget gets (`/widget-modules/<name>`) plus the
 * widget's trait defaults, a LocalModel starting from those stands in for anywidget's model, and
 * the module loads its first state itself: the
 * monitor when it has no `since` for its topic, the explorer when it has no version.
 */
import type { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { API_PATH, ApiError, errorFromResponse, MakeRequest } from './api';
import type { MainAreaKind } from './studio';

export type ModelListener = (...args: unknown[]) => void;

/** The part of anywidget's model the widget modules use, kept in this page only. */
export class LocalModel {
  private readonly _state: Record<string, unknown>;
  private readonly _listeners = new Map<string, Set<ModelListener>>();

  constructor(state: Record<string, unknown>) {
    this._state = { ...state };
  }

  get(key: string): any {
    return this._state[key];
  }

  /** Like Backbone's: `change:<key>` then `change`, only when the value really changes. */
  set(key: string, value: unknown): void {
    if (Object.is(this._state[key], value)) {
      return;
    }
    this._state[key] = value;
    this._emit(`change:${key}`, this, value);
    this._emit('change', this);
  }

  on(name: string, listener: ModelListener): void {
    let listeners = this._listeners.get(name);
    if (!listeners) {
      listeners = new Set();
      this._listeners.set(name, listeners);
    }
    listeners.add(listener);
  }

  /** `off(name, fn)` one listener, `off(name)` all of that event, `off()` every listener. */
  off(name?: string, listener?: ModelListener): void {
    if (name === undefined) {
      this._listeners.clear();
    } else if (listener === undefined) {
      this._listeners.delete(name);
    } else {
      this._listeners.get(name)?.delete(listener);
    }
  }

  /** No kernel to sync with: the state lives here. */
  save_changes(): void {
    return;
  }

  /** No kernel to hear it (a widget's "refresh" request); the modules reload over REST themselves. */
  send(content: unknown): void {
    void content;
  }

  /** A copy of the whole state (for tests and debugging). */
  state(): Record<string, unknown> {
    return { ...this._state };
  }

  private _emit(name: string, ...args: unknown[]): void {
    // a copy: a listener may unsubscribe itself (or another) while being called
    for (const listener of Array.from(this._listeners.get(name) ?? [])) {
      try {
        listener(...args);
      } catch (error) {
        console.error(`AI Studio: a ${name} listener failed`, error);
      }
    }
  }
}

/** What a tab's model starts from: the widget's trait defaults, which the server sends with its
 * module (so they are the Python widget's own), and the job or dataset it shows. */
export function firstState(kind: MainAreaKind, defaults: Record<string, unknown>, id: string, name: string): Record<string, unknown> {
  return kind === 'monitor' ? { ...defaults, job_id: id } : { ...defaults, dataset_id: id, dataset_name: name };
}

/** An anywidget module: `render` draws into `el` and may return (a promise of) its cleanup. */
export interface IWidgetModule {
  default: { render(props: { model: LocalModel; el: HTMLElement }): unknown };
  /** The widget's synced traits at their defaults (appended by the server, not by anywidget). */
  defaults: Record<string, unknown>;
}

export type Importer = (url: string) => Promise<IWidgetModule>;

export interface ILoadOptions {
  makeRequest?: MakeRequest;
  importer?: Importer;
}

// webpack must leave this import to the browser: the URL is a blob made at run time
const nativeImport: Importer = url => import(/* webpackIgnore: true */ url);

/** Served module names: a fixed table, so nothing else ever reaches the URL. */
const MODULE_NAMES: Record<MainAreaKind, string> = { monitor: 'monitor', explorer: 'explorer' };

const loaded = new Map<string, Promise<IWidgetModule>>();

/** Forgets loaded modules (tests; a module is otherwise fetched once per page and server). */
export function clearModuleCache(): void {
  loaded.clear();
}

/** The widget's module, fetched with the page's credentials and imported once per page. */
export function loadWidgetModule(kind: MainAreaKind, settings: ServerConnection.ISettings, options: ILoadOptions = {}): Promise<IWidgetModule> {
  const key = `${settings.baseUrl}|${kind}`;
  let module = loaded.get(key);
  if (!module) {
    const loading = fetchWidgetModule(kind, settings, options);
    loaded.set(key, loading);
    // a failure is not kept: the next open (or Retry) asks the server again
    loading.catch(() => {
      if (loaded.get(key) === loading) {
        loaded.delete(key);
      }
    });
    module = loading;
  }
  return module;
}

async function fetchWidgetModule(kind: MainAreaKind, settings: ServerConnection.ISettings, options: ILoadOptions): Promise<IWidgetModule> {
  const base = settings.baseUrl.endsWith('/') ? settings.baseUrl : `${settings.baseUrl}/`;
  const url = `${base}${API_PATH}/widget-modules/${MODULE_NAMES[kind]}`;
  const makeRequest = options.makeRequest ?? ServerConnection.makeRequest;
  let response: Response;
  try {
    // 'no-cache' revalidates by ETag (Lab's default 'no-store' would refetch the whole module)
    response = await makeRequest(url, { method: 'GET', cache: 'no-cache' }, settings);
  } catch (error) {
    throw new ApiError({ status: 0, code: 'network', message: `Could not reach AI Studio: ${(error as Error)?.message ?? error}` });
  }
  if (!response.ok) {
    throw await errorFromResponse(response);
  }
  const text = await response.text();
  // anywidget loads `_esm` the same way: a module URL made from the text
  const blobUrl = URL.createObjectURL(new Blob([text], { type: 'text/javascript' }));
  try {
    const module = await (options.importer ?? nativeImport)(blobUrl);
    if (typeof module?.default?.render !== 'function' || typeof module.defaults !== 'object' || module.defaults === null) {
      throw new ApiError({ status: 0, code: 'bad_response', message: `The ${kind} module has no render function or defaults.` });
    }
    return module;
  } finally {
    URL.revokeObjectURL(blobUrl);
  }
}

export interface IHostedViewOptions {
  kind: MainAreaKind;
  id: string;
  name: string;
  /** Resolves to the widget's module (loadWidgetModule, bound to the page's settings). */
  load: () => Promise<IWidgetModule>;
}

/** One widget module rendered into a Lumino widget; its cleanup runs when the widget is disposed. */
export class HostedView extends Widget {
  readonly kind: MainAreaKind;
  /** The job's or dataset's id. */
  readonly key: string;
  readonly label: string;
  /** The tab's model, once the module (and so its defaults) has loaded. */
  model: LocalModel | null = null;
  /** Settles once the module has rendered (or failed to load). */
  ready: Promise<void>;
  private readonly _load: () => Promise<IWidgetModule>;
  private readonly _host: HTMLDivElement;
  private _cleanup: (() => void) | null = null;

  constructor(options: IHostedViewOptions) {
    super();
    this.kind = options.kind;
    this.key = options.id;
    this.label = options.name;
    this._load = options.load;
    this.addClass('ais-hosted');
    this.node.setAttribute('data-testid', `ais-hosted-${options.kind}`);
    this.node.setAttribute('data-id', options.id);
    this._host = document.createElement('div');
    this._host.className = 'ais-hosted-body';
    this.node.appendChild(this._host);
    this.ready = this._start();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._stop();
    super.dispose();
  }

  private _stop(): void {
    const cleanup = this._cleanup;
    this._cleanup = null;
    if (cleanup) {
      try {
        cleanup();
      } catch (error) {
        console.error('AI Studio: a widget failed to clean up', error);
      }
    }
  }

  private async _start(): Promise<void> {
    this._host.replaceChildren(this._note('Loading…'));
    let module: IWidgetModule;
    try {
      module = await this._load();
    } catch (error) {
      if (!this.isDisposed) {
        this._failed(error);
      }
      return;
    }
    if (this.isDisposed) {
      return;
    }
    this._host.replaceChildren();
    let cleanup: unknown = null;
    try {
      // the modules' render shows its own failures inside `el`; this only guards the tab
      this.model = new LocalModel(firstState(this.kind, module.defaults, this.key, this.label));
      cleanup = await module.default.render({ model: this.model, el: this._host });
    } catch (error) {
      console.error(`AI Studio: the ${this.kind} failed to render`, error);
    }
    if (typeof cleanup === 'function') {
      this._cleanup = cleanup as () => void;
      // closed while an async render was still running
      if (this.isDisposed) {
        this._stop();
      }
    }
  }

  private _failed(error: unknown): void {
    const box = document.createElement('div');
    box.className = 'ais-hosted-error';
    box.setAttribute('role', 'alert');
    box.setAttribute('data-testid', 'ais-hosted-error');
    // the server's own words, as text
    box.textContent = `The ${this.kind === 'monitor' ? 'monitor' : 'explorer'} could not be loaded: ${error instanceof Error ? error.message : String(error)}`;
    const retry = document.createElement('button');
    retry.className = 'jp-Button jp-mod-styled ais-small';
    retry.setAttribute('data-testid', 'ais-retry');
    retry.textContent = 'Retry';
    retry.onclick = () => {
      this.ready = this._start();
    };
    this._host.replaceChildren(box, retry);
  }

  private _note(text: string): HTMLElement {
    const note = document.createElement('div');
    note.className = 'ais-hosted-note';
    note.textContent = text;
    return note;
  }
}

/** The commands that open each kind, and the argument that names what they show. */
export const MAIN_AREA_COMMANDS: Record<MainAreaKind, { command: string; idArg: string; label: string }> = {
  monitor: { command: 'aistudio:open-monitor', idArg: 'jobId', label: 'Monitor' },
  explorer: { command: 'aistudio:open-explorer', idArg: 'datasetId', label: 'Explore' }
};

/** A DOM-safe widget id for a job or dataset id (ours are already `[a-z0-9_]`). */
export function mainAreaId(kind: MainAreaKind, id: string): string {
  return `aistudio-${kind}-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/**
 * Registers `aistudio:open-monitor` {jobId, name} and `aistudio:open-explorer` {datasetId, name}:
 * one tab per job or dataset (opening it again activates it), restored after a page reload.
 * Returns the opener the panels get as `IStudio.open`.
 */
export function addMainAreaViews(
  app: JupyterFrontEnd,
  restorer: ILayoutRestorer | null,
  settings: ServerConnection.ISettings
): (kind: MainAreaKind, id: string, name: string) => void {
  for (const kind of Object.keys(MAIN_AREA_COMMANDS) as MainAreaKind[]) {
    const { command, idArg, label } = MAIN_AREA_COMMANDS[kind];
    const tracker = new WidgetTracker<MainAreaWidget<HostedView>>({ namespace: `aistudio-${kind}` });
    app.commands.addCommand(command, {
      label: args => (typeof args.name === 'string' && args.name ? `${label}: ${args.name}` : label),
      describedBy: {
        args: {
          type: 'object',
          properties: { [idArg]: { type: 'string' }, name: { type: 'string' } },
          required: [idArg]
        }
      },
      execute: args => {
        const id = args[idArg];
        if (typeof id !== 'string' || !id) {
          throw new Error(`${command} needs a ${idArg}`);
        }
        const name = typeof args.name === 'string' ? args.name : '';
        const open = tracker.find(widget => widget.content.key === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const content = new HostedView({ kind, id, name, load: () => loadWidgetModule(kind, settings) });
        const widget = new MainAreaWidget({ content });
        widget.id = mainAreaId(kind, id);
        widget.title.label = `${label}: ${name || id}`;
        widget.title.caption = `${label} ${name || id} (${id}), live from AI Studio`;
        widget.title.closable = true;
        void tracker.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    void restorer?.restore(tracker, {
      command,
      args: widget => ({ [idArg]: widget.content.key, name: widget.content.label }),
      name: widget => widget.content.key
    });
  }
  return (kind, id, name) => {
    void app.commands.execute(MAIN_AREA_COMMANDS[kind].command, { [MAIN_AREA_COMMANDS[kind].idArg]: id, name });
  };
}
