/**
 * @jest-environment jsdom
 *
 * The monitor and explorer hosted in the main area without a kernel: the LocalModel that stands
 * in for anywidget's, the module loader (one fetch per page, the server's envelope on failure),
 * the Lumino view that renders a module and cleans it up, the open commands (one tab per job or
 * dataset, restored after a reload) and the sidebar's Monitor and Explore buttons.
 */
import { CommandRegistry } from '@lumino/commands';
import React from 'react';
import { act } from 'react';
import { createRoot, Root } from 'react-dom/client';

import { ApiError } from '../api';
import { DatasetsPanel } from '../components/DatasetsPanel';
import { JobsPanel } from '../components/JobsPanel';
import { addMainAreaViews, clearModuleCache, HostedView, firstState, IWidgetModule, loadWidgetModule, LocalModel, mainAreaId } from '../hosted';
import { DEFAULT_SETTINGS, IStudio } from '../studio';

// apputils is an ES module jest does not load; these stand-ins keep what hosted.ts uses
jest.mock('@jupyterlab/apputils', () => {
  // Lumino's drag and drop subclasses DragEvent, which jsdom lacks; this mock loads it first
  if (typeof (globalThis as any).DragEvent === 'undefined') {
    (globalThis as any).DragEvent = class DragEvent extends MouseEvent {};
  }
  const { Widget } = jest.requireActual('@lumino/widgets');
  class MainAreaWidget extends Widget {
    content: any;
    constructor(options: { content: any }) {
      super();
      this.content = options.content;
    }
    dispose(): void {
      this.content.dispose();
      super.dispose();
    }
  }
  class WidgetTracker {
    widgets: any[] = [];
    namespace: string;
    constructor(options: { namespace: string }) {
      this.namespace = options.namespace;
    }
    find(fn: (w: any) => boolean): any {
      return this.widgets.find(w => !w.isDisposed && fn(w));
    }
    add(widget: any): Promise<void> {
      this.widgets.push(widget);
      return Promise.resolve();
    }
  }
  return { MainAreaWidget, WidgetTracker };
});

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

const SETTINGS = { baseUrl: 'http://lab.test/user/alice/' } as any;

interface IFakeResponse {
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

function respond(status: number, body: string): IFakeResponse {
  return { ok: status >= 200 && status < 300, status, statusText: '', headers: { get: () => null }, text: () => Promise.resolve(body) };
}

async function flush(): Promise<void> {
  await act(async () => {
    await new Promise(resolve => setTimeout(resolve, 0));
  });
}

let blobs: Blob[];
beforeEach(() => {
  clearModuleCache();
  blobs = [];
  (URL as any).createObjectURL = jest.fn((blob: Blob) => {
    blobs.push(blob);
    return `blob:http://lab.test/${blobs.length}`;
  });
  (URL as any).revokeObjectURL = jest.fn();
});

describe('LocalModel', () => {
  test('set announces change:<key> then change, and only for a new value', () => {
    const model = new LocalModel({ x_key: 'step', smoothing: 0.6 });
    const seen: string[] = [];
    const onKey = (_m: unknown, value: unknown): void => {
      seen.push(`change:x_key=${value}`);
    };
    model.on('change:x_key', onKey);
    model.on('change', () => seen.push('change'));
    model.set('x_key', 'epoch');
    model.set('x_key', 'epoch');
    model.set('smoothing', 0);
    expect(model.get('x_key')).toBe('epoch');
    expect(seen).toEqual(['change:x_key=epoch', 'change', 'change']);

    model.off('change:x_key', onKey);
    model.set('x_key', 'time');
    expect(seen).toEqual(['change:x_key=epoch', 'change', 'change', 'change']);
    model.off('change');
    model.set('x_key', 'step');
    expect(seen).toHaveLength(4);
    // no kernel: these are accepted and do nothing
    model.save_changes();
    model.send({ op: 'refresh' });
  });

  test('a listener that throws does not stop the others', () => {
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const model = new LocalModel({});
    const after = jest.fn();
    model.on('change:a', () => {
      throw new Error('broken');
    });
    model.on('change:a', after);
    model.set('a', 1);
    expect(after).toHaveBeenCalledTimes(1);
    jest.restoreAllMocks();
  });

  test("the first state is the module's defaults with the job or dataset shown", () => {
    const defaults = { job_id: '', dataset_id: '', dataset_name: '', error: null, max_points: 1000 };
    expect(firstState('monitor', defaults, 'job_1', 'train')).toEqual({ ...defaults, job_id: 'job_1' });
    expect(firstState('explorer', defaults, 'ds_1', 'iris')).toEqual({ ...defaults, dataset_id: 'ds_1', dataset_name: 'iris' });
    expect(defaults.job_id).toBe(''); // not changed in place
  });
});

describe('loadWidgetModule', () => {
  const module: IWidgetModule = { default: { render: () => undefined }, defaults: {} };

  test('fetches the module once through ServerConnection and imports it from a blob URL', async () => {
    const makeRequest = jest.fn().mockResolvedValue(respond(200, 'export default { render() {} };'));
    const importer = jest.fn().mockResolvedValue(module);
    const first = await loadWidgetModule('monitor', SETTINGS, { makeRequest, importer });
    const again = await loadWidgetModule('monitor', SETTINGS, { makeRequest, importer });
    expect(first).toBe(module);
    expect(again).toBe(module);
    expect(makeRequest).toHaveBeenCalledTimes(1);
    const [url, init, settings] = makeRequest.mock.calls[0];
    expect(url).toBe('http://lab.test/user/alice/aistudio/api/widget-modules/monitor');
    expect(init).toEqual({ method: 'GET', cache: 'no-cache' });
    expect(settings).toBe(SETTINGS);
    expect(importer).toHaveBeenCalledWith('blob:http://lab.test/1');
    expect(blobs[0].type).toBe('text/javascript');
    expect(blobs[0].size).toBe('export default { render() {} };'.length);
    expect(URL.revokeObjectURL).toHaveBeenCalledWith('blob:http://lab.test/1');

    await loadWidgetModule('explorer', SETTINGS, { makeRequest, importer });
    expect(makeRequest.mock.calls[1][0]).toBe('http://lab.test/user/alice/aistudio/api/widget-modules/explorer');
  });

  test("a refusal is the server's envelope, and is not cached", async () => {
    const envelope = JSON.stringify({ error: { code: 'unauthenticated', message: 'Authentication required', details: {}, request_id: 'r1' } });
    const makeRequest = jest.fn().mockResolvedValueOnce(respond(403, envelope)).mockResolvedValueOnce(respond(200, 'x'));
    const importer = jest.fn().mockResolvedValue(module);
    const failure = await loadWidgetModule('explorer', SETTINGS, { makeRequest, importer }).catch(e => e);
    expect(failure).toBeInstanceOf(ApiError);
    expect(failure.status).toBe(403);
    expect(failure.message).toBe('Authentication required');
    expect(importer).not.toHaveBeenCalled();
    await expect(loadWidgetModule('explorer', SETTINGS, { makeRequest, importer })).resolves.toBe(module);
    expect(makeRequest).toHaveBeenCalledTimes(2);
  });

  test('a network failure and a module without render are errors', async () => {
    const down = jest.fn().mockRejectedValue(new TypeError('Failed to fetch'));
    await expect(loadWidgetModule('monitor', SETTINGS, { makeRequest: down })).rejects.toMatchObject({ status: 0, code: 'network' });
    const ok = jest.fn().mockResolvedValue(respond(200, 'export default {}'));
    await expect(loadWidgetModule('monitor', SETTINGS, { makeRequest: ok, importer: () => Promise.resolve({ default: {} } as any) })).rejects.toMatchObject({
      code: 'bad_response'
    });
  });
});

describe('HostedView', () => {
  test('renders the module with the model and runs its cleanup once on dispose', async () => {
    const cleanup = jest.fn();
    const render = jest.fn(({ model, el }: { model: LocalModel; el: HTMLElement }) => {
      const p = document.createElement('p');
      p.textContent = `job ${model.get('job_id')} smoothing ${model.get('smoothing')}`;
      el.appendChild(p);
      return cleanup;
    });
    const view = new HostedView({ kind: 'monitor', id: 'job_7', name: 'train', load: () => Promise.resolve({ default: { render }, defaults: { job_id: '', smoothing: 0.6 } }) });
    await view.ready;
    expect(view.node.getAttribute('data-testid')).toBe('ais-hosted-monitor');
    expect(view.node.getAttribute('data-id')).toBe('job_7');
    expect(view.node.textContent).toBe('job job_7 smoothing 0.6');
    expect(render.mock.calls[0][0].model).toBe(view.model);
    view.dispose();
    view.dispose();
    expect(cleanup).toHaveBeenCalledTimes(1);
  });

  test('an async render is cleaned up even when the tab closed first', async () => {
    const cleanup = jest.fn();
    let finish: (fn: () => void) => void = () => undefined;
    const render = (): Promise<() => void> => new Promise(resolve => (finish = resolve));
    const view = new HostedView({ kind: 'explorer', id: 'ds_1', name: 'iris', load: () => Promise.resolve({ default: { render }, defaults: {} }) });
    await new Promise(resolve => setTimeout(resolve, 0));
    view.dispose();
    finish(cleanup);
    await view.ready;
    expect(cleanup).toHaveBeenCalledTimes(1);
  });

  test('a module that fails to load says why, as text, and Retry loads it again', async () => {
    const markup = '<img src=x onerror="window.pwned=1">';
    const load = jest
      .fn()
      .mockRejectedValueOnce(new ApiError({ status: 503, code: 'unavailable', message: `Database down ${markup}` }))
      .mockResolvedValueOnce({ default: { render: ({ el }: { el: HTMLElement }) => el.append('rendered') }, defaults: {} });
    const view = new HostedView({ kind: 'explorer', id: 'ds_1', name: 'iris', load });
    await view.ready;
    const error = view.node.querySelector('[data-testid="ais-hosted-error"]')!;
    expect(error.textContent).toBe(`The explorer could not be loaded: Database down ${markup}`);
    expect(view.node.querySelector('img')).toBeNull();
    (view.node.querySelector('[data-testid="ais-retry"]') as HTMLButtonElement).click();
    await view.ready;
    expect(view.node.textContent).toBe('rendered');
    expect(load).toHaveBeenCalledTimes(2);
    view.dispose();
  });
});

describe('the open commands', () => {
  function fakeLab(): { app: any; shell: { add: jest.Mock; activateById: jest.Mock }; restorer: { restore: jest.Mock } } {
    const shell = { add: jest.fn(), activateById: jest.fn() };
    return { app: { commands: new CommandRegistry(), shell }, shell, restorer: { restore: jest.fn().mockResolvedValue(undefined) } };
  }

  test('one tab per job: opening it again activates it; both kinds are restorable', async () => {
    const makeRequest = jest.fn().mockResolvedValue(respond(200, 'x'));
    await loadWidgetModule('monitor', SETTINGS, { makeRequest, importer: () => Promise.resolve({ default: { render: () => undefined }, defaults: {} }) });
    const { app, shell, restorer } = fakeLab();
    const open = addMainAreaViews(app, restorer as any, SETTINGS);
    expect(app.commands.hasCommand('aistudio:open-monitor')).toBe(true);
    expect(app.commands.hasCommand('aistudio:open-explorer')).toBe(true);

    const first = await app.commands.execute('aistudio:open-monitor', { jobId: 'job_1', name: 'train <b>' });
    expect(shell.add).toHaveBeenCalledWith(first, 'main');
    expect(first.id).toBe('aistudio-monitor-job_1');
    expect(first.title.label).toBe('Monitor: train <b>');
    expect(first.content).toBeInstanceOf(HostedView);
    open('monitor', 'job_1', 'train <b>');
    await flush();
    expect(shell.add).toHaveBeenCalledTimes(1);
    expect(shell.activateById).toHaveBeenLastCalledWith('aistudio-monitor-job_1');

    open('explorer', 'ds_9', 'iris');
    await flush();
    expect(shell.add).toHaveBeenCalledTimes(2);
    expect(shell.add.mock.calls[1][0].content.kind).toBe('explorer');

    // the restorer re-runs the same command with the same arguments after a reload
    const [[monitorTracker, monitorRestore], [, explorerRestore]] = restorer.restore.mock.calls;
    expect(monitorTracker.namespace).toBe('aistudio-monitor');
    expect(monitorRestore.command).toBe('aistudio:open-monitor');
    expect(monitorRestore.args(first)).toEqual({ jobId: 'job_1', name: 'train <b>' });
    expect(monitorRestore.name(first)).toBe('job_1');
    expect(explorerRestore.command).toBe('aistudio:open-explorer');
    expect(explorerRestore.args(shell.add.mock.calls[1][0])).toEqual({ datasetId: 'ds_9', name: 'iris' });

    // closed, it opens anew
    first.dispose();
    open('monitor', 'job_1', 'train');
    await flush();
    expect(shell.add).toHaveBeenCalledTimes(3);
    await expect(app.commands.execute('aistudio:open-monitor', {})).rejects.toThrow('needs a jobId');
  });

  test('widget ids stay DOM-safe', () => {
    expect(mainAreaId('explorer', 'ds_01h"x y')).toBe('aistudio-explorer-ds_01h_x_y');
  });
});

describe('the sidebar buttons', () => {
  let container: HTMLDivElement;
  let root: Root;

  beforeEach(() => {
    container = document.createElement('div');
    document.body.appendChild(container);
    root = createRoot(container);
  });

  afterEach(() => {
    act(() => root.unmount());
    container.remove();
  });

  function studioWith(open?: jest.Mock): IStudio {
    return {
      api: {
        me: jest.fn().mockResolvedValue({ username: 'alice' }),
        jobs: jest.fn().mockResolvedValue({ items: [{ id: 'job_1', name: 'train', kind: 'script', state: 'running', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }] }),
        datasets: jest.fn().mockResolvedValue({ items: [{ id: 'ds_1', name: 'iris', latest_version: 1, size_bytes: 10, visibility: 'private' }] }),
        validations: jest.fn().mockResolvedValue({ items: [] })
      },
      events: { subscribe: jest.fn(() => () => undefined), onReconnect: jest.fn(() => () => undefined) },
      settings: { ...DEFAULT_SETTINGS, refreshInterval: 0 },
      insertSnippet: () => false,
      ...(open ? { open } : {})
    } as unknown as IStudio;
  }

  test('Monitor on a job row and Explore on a dataset row open them in the main area', async () => {
    const open = jest.fn();
    const studio = studioWith(open);
    act(() => root.render(React.createElement('div', null, React.createElement(JobsPanel, { studio }), React.createElement(DatasetsPanel, { studio }))));
    await flush();
    const monitor = container.querySelector('[data-testid="ais-job-job_1"] [data-testid="ais-job-monitor"]') as HTMLButtonElement;
    expect(monitor.textContent).toBe('Monitor');
    act(() => monitor.click());
    expect(open).toHaveBeenLastCalledWith('monitor', 'job_1', 'train');
    const explore = container.querySelector('[data-testid="ais-dataset-ds_1"] [data-testid="ais-dataset-explore"]') as HTMLButtonElement;
    expect(explore.textContent).toBe('Explore');
    act(() => explore.click());
    expect(open).toHaveBeenLastCalledWith('explorer', 'ds_1', 'iris');
  });

  test('outside Lab (no opener) the buttons are not shown', async () => {
    const studio = studioWith();
    act(() => root.render(React.createElement('div', null, React.createElement(JobsPanel, { studio }), React.createElement(DatasetsPanel, { studio }))));
    await flush();
    expect(container.querySelector('[data-testid="ais-job-job_1"]')).not.toBeNull();
    expect(container.querySelector('[data-testid="ais-dataset-ds_1"]')).not.toBeNull();
    expect(container.querySelector('[data-testid="ais-job-monitor"]')).toBeNull();
    expect(container.querySelector('[data-testid="ais-dataset-explore"]')).toBeNull();
  });
});
