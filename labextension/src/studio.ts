/** What every panel shares: the API and events clients, the settings, notebook access. */
import { ApiClient } from './api';
import { EventsClient } from './events';

/** What a sidebar row can open in the main area: a job's live monitor, a dataset's explorer. */
export type MainAreaKind = 'monitor' | 'explorer';

export type PanelId = 'jobs' | 'datasets' | 'models' | 'deployments' | 'agents' | 'usage';

export const PANELS: { id: PanelId; title: string }[] = [
  { id: 'jobs', title: 'Jobs' },
  { id: 'datasets', title: 'Datasets' },
  { id: 'models', title: 'Models' },
  { id: 'deployments', title: 'Deployments' },
  { id: 'agents', title: 'Agents' },
  { id: 'usage', title: 'Usage' }
];

export interface IStudioSettings {
  /** Seconds between reloads of the lists (a fallback for the live ones); 0: never. */
  refreshInterval: number;
  visiblePanels: PanelId[];
  validateUploads: boolean;
}

export const DEFAULT_SETTINGS: IStudioSettings = {
  refreshInterval: 30,
  visiblePanels: PANELS.map(p => p.id),
  validateUploads: true
};

export interface IStudio {
  api: ApiClient;
  events: EventsClient;
  settings: IStudioSettings;
  /** Puts code into the active notebook cell; false when there is no notebook to put it in. */
  insertSnippet(code: string): boolean;
  /** Opens (or activates) the main-area table comparing `versions` of a model; absent outside Lab. */
  compare?: (modelId: string, versions: number[], modelName?: string) => void;
  /** Opens (or activates) a job's monitor or a dataset's explorer in the main area, without a
   * kernel; absent outside Lab. */
  open?: (kind: MainAreaKind, id: string, name: string) => void;
}

/** The code that loads a dataset by name, quoted as a Python string literal. */
export function datasetSnippet(name: string): string {
  return `ais.datasets.get(${JSON.stringify(name)})`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  return isNaN(date.getTime()) ? '' : date.toLocaleString();
}
