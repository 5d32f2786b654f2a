import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { ApiClient } from './api';
import { compareOpener } from './components/CompareView';
import { compareWidget } from './compareWidget';
import { EventsClient, eventsUrl } from './events';
import { addMainAreaViews } from './hosted';
import { StudioSidebar } from './sidebar';
import { DEFAULT_SETTINGS, IStudio, IStudioSettings, PanelId } from './studio';

const PLUGIN_ID = 'aistudio-jupyter:plugin';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
  '<path d="M12 2 3 7v10l9 5 9-5V7l-9-5zm0 2.3 6.7 3.7L12 11.7 5.3 8 12 4.3zM5 9.7l6 3.3v6.6l-6-3.3V9.7zm8 9.9V13l6-3.3v6.6l-6 3.3z"/></g></svg>';

export const studioIcon = new LabIcon({ name: 'aistudio-jupyter:icon', svgstr: ICON_SVG });

function readSettings(settings: ISettingRegistry.ISettings | null): IStudioSettings {
  if (!settings) {
    return DEFAULT_SETTINGS;
  }
  const composite = settings.composite as any;
  return {
    refreshInterval: typeof composite.refreshInterval === 'number' ? composite.refreshInterval : DEFAULT_SETTINGS.refreshInterval,
    visiblePanels: Array.isArray(composite.visiblePanels) ? (composite.visiblePanels as PanelId[]) : DEFAULT_SETTINGS.visiblePanels,
    validateUploads: typeof composite.validateUploads === 'boolean' ? composite.validateUploads : DEFAULT_SETTINGS.validateUploads
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The AI Studio sidebar: datasets, jobs, models, deployments, agents and usage.',
  autoStart: true,
  optional: [ISettingRegistry, INotebookTracker, ILayoutRestorer],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null,
    notebooks: INotebookTracker | null,
    restorer: ILayoutRestorer | null
  ) => {
    const server = ServerConnection.makeSettings();
    const api = new ApiClient(server);
    const events = new EventsClient({ url: eventsUrl(server), WebSocket: server.WebSocket as any });

    const insertSnippet = (code: string): boolean => {
      const cell = notebooks?.activeCell;
      if (!cell || cell.model.type !== 'code') {
        return false;
      }
      const source = cell.model.sharedModel.getSource();
      cell.model.sharedModel.setSource(source.trim() ? `${source.replace(/\s+$/, '')}\n${code}` : code);
      return true;
    };

    const openCompare = compareOpener(app.shell, (modelId, versions, modelName) => compareWidget(api, modelId, versions, modelName));
    app.commands.addCommand('aistudio:compare-versions', {
      label: 'Compare model versions',
      describedBy: {
        args: {
          type: 'object',
          properties: { modelId: { type: 'string' }, versions: { type: 'array', items: { type: 'integer' } }, modelName: { type: 'string' } },
          required: ['modelId', 'versions']
        }
      },
      execute: args => {
        const versions = Array.isArray(args.versions) ? (args.versions as unknown[]).map(Number).filter(v => Number.isInteger(v) && v > 0) : [];
        if (typeof args.modelId !== 'string' || versions.length === 0) {
          throw new Error('aistudio:compare-versions needs a modelId and a list of versions');
        }
        openCompare(args.modelId, versions, typeof args.modelName === 'string' ? args.modelName : undefined);
      }
    });
    const compare = (modelId: string, versions: number[], modelName?: string): void => {
      void app.commands.execute('aistudio:compare-versions', { modelId, versions, ...(modelName ? { modelName } : {}) });
    };

    // aistudio:open-monitor and aistudio:open-explorer, restored after a reload
    const open = addMainAreaViews(app, restorer, server);

    const make = (settings: IStudioSettings): IStudio => ({ api, events, settings, insertSnippet, compare, open });
    const sidebar = new StudioSidebar(make(DEFAULT_SETTINGS));
    sidebar.title.icon = studioIcon;
    sidebar.title.caption = 'AI Studio';
    app.shell.add(sidebar, 'left', { rank: 600 });
    restorer?.add(sidebar, 'aistudio-sidebar');

    app.commands.addCommand('aistudio:open-sidebar', {
      label: 'Open the AI Studio sidebar',
      execute: () => app.shell.activateById(sidebar.id)
    });

    if (registry) {
      try {
        const settings = await registry.load(PLUGIN_ID);
        sidebar.studio = make(readSettings(settings));
        settings.changed.connect(() => {
          sidebar.studio = make(readSettings(settings));
        });
      } catch (error) {
        console.warn('AI Studio: settings could not be loaded; using the defaults', error);
      }
    }
  }
};

export default plugin;
