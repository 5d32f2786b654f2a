/**
 * The AI Studio REST client of the sidebar.
 *
 * Every call goes through JupyterLab's ServerConnection, so the base URL, the XSRF header and
 * the token are the page's own, exactly as for Lab's kernel and contents requests. Failures
 * come back as ApiError, built from the server's envelope
 * `{"error": {"code", "message", "details", "request_id"}}`, so a panel can show the server's
 * own words instead of a status code.
 */
import { ServerConnection } from '@jupyterlab/services';

import type {
  Dataset,
  Deployment,
  Job,
  JobLog,
  ListPage,
  Me,
  Model,
  ModelVersion,
  PredictResult,
  Validation
} from './types';
import type { Agent, AgentCreate, AgentUpdate, ModelCompare } from './types';

/** Path of the API under the server's base URL. */
export const API_PATH = 'aistudio/api';

export type Params = Record<string, string | number | boolean | null | undefined>;

export interface IRequestOptions {
  method?: string;
  body?: unknown;
  params?: Params;
  /** Abort a request that hangs (a stuck proxy must not leave a spinner forever). */
  timeoutMs?: number;
}

export type MakeRequest = (
  url: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
) => Promise<Response>;

/** An API failure, with the server's envelope when there was one. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly requestId: string | null;
  /** Seconds the server asked us to wait (429/503 `Retry-After`), if any. */
  readonly retryAfter: number | null;

  constructor(options: {
    status: number;
    code: string;
    message: string;
    details?: Record<string, unknown>;
    requestId?: string | null;
    retryAfter?: number | null;
  }) {
    super(options.message);
    this.name = 'ApiError';
    this.status = options.status;
    this.code = options.code;
    this.details = options.details ?? {};
    this.requestId = options.requestId ?? null;
    this.retryAfter = options.retryAfter ?? null;
  }

  /** Whether trying again later may succeed (outages, rate limits, network). */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

function statusCode(status: number): string {
  if (status === 401) {
    return 'unauthenticated';
  }
  if (status === 403) {
    return 'forbidden';
  }
  if (status === 404) {
    return 'not_found';
  }
  if (status === 429) {
    return 'rate_limited';
  }
  return status >= 500 ? 'unavailable' : 'invalid';
}

/** The ApiError for a non-2xx response: the envelope when the body is one, else the status. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  const header = response.headers.get('Retry-After');
  const retryAfter = header !== null && /^\d+$/.test(header.trim()) ? Number(header) : null;
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const envelope = body && typeof body === 'object' ? body.error : null;
  if (envelope && typeof envelope === 'object' && typeof envelope.message === 'string') {
    return new ApiError({
      status: response.status,
      code: typeof envelope.code === 'string' ? envelope.code : statusCode(response.status),
      message: envelope.message,
      details: envelope.details && typeof envelope.details === 'object' ? envelope.details : {},
      requestId: typeof envelope.request_id === 'string' ? envelope.request_id : null,
      retryAfter
    });
  }
  // not ours (a proxy's HTML page, Jupyter's own 403 before our handler ran): keep it short
  const reason = response.statusText || statusCode(response.status);
  return new ApiError({
    status: response.status,
    code: statusCode(response.status),
    message: `The server answered ${response.status} ${reason}.`,
    retryAfter
  });
}

export function queryString(params?: Params): string {
  if (!params) {
    return '';
  }
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') {
      search.append(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export class ApiClient {
  readonly settings: ServerConnection.ISettings;
  private readonly _makeRequest: MakeRequest;

  constructor(settings?: ServerConnection.ISettings, makeRequest?: MakeRequest) {
    this.settings = settings ?? ServerConnection.makeSettings();
    this._makeRequest = makeRequest ?? ServerConnection.makeRequest;
  }

  /** Absolute URL of an API path (`/jobs`), with its query string. */
  url(path: string, params?: Params): string {
    const base = this.settings.baseUrl.endsWith('/') ? this.settings.baseUrl : `${this.settings.baseUrl}/`;
    const tail = path.startsWith('/') ? path : `/${path}`;
    return `${base}${API_PATH}${tail}${queryString(params)}`;
  }

  async request<T>(path: string, options: IRequestOptions = {}): Promise<T> {
    // 'no-cache' (revalidate) rather than Lab's default 'no-store', for which ServerConnection
    // appends a `?<timestamp>` cache buster that our strict query schemas refuse (422)
    const init: RequestInit = { method: options.method ?? 'GET', cache: 'no-cache' };
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      headers['Content-Type'] = 'application/json';
    }
    init.headers = headers;
    const controller = typeof AbortController !== 'undefined' ? new AbortController() : null;
    const timeout = options.timeoutMs ?? 30000;
    let timer: ReturnType<typeof setTimeout> | null = null;
    if (controller) {
      init.signal = controller.signal;
      timer = setTimeout(() => controller.abort(), timeout);
    }
    let response: Response;
    try {
      response = await this._makeRequest(this.url(path, options.params), init, this.settings);
    } catch (error) {
      const aborted = controller?.signal.aborted;
      throw new ApiError({
        status: 0,
        code: aborted ? 'timeout' : 'network',
        message: aborted
          ? `AI Studio did not answer within ${Math.round(timeout / 1000)} s.`
          : `Could not reach AI Studio: ${(error as Error)?.message ?? error}`
      });
    } finally {
      if (timer !== null) {
        clearTimeout(timer);
      }
    }
    if (!response.ok) {
      throw await errorFromResponse(response);
    }
    if (response.status === 204) {
      return undefined as T;
    }
    const text = await response.text();
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new ApiError({
        status: response.status,
        code: 'bad_response',
        message: 'AI Studio answered with something that is not JSON.'
      });
    }
  }

  // -- resources ---------------------------------------------------------------------------

  me(): Promise<Me> {
    return this.request<Me>('/me');
  }

  jobs(params: Params = {}): Promise<ListPage<Job>> {
    return this.request<ListPage<Job>>('/jobs', { params: { limit: 100, ...params } });
  }

  job(id: string): Promise<Job> {
    return this.request<Job>(`/jobs/${encodeURIComponent(id)}`);
  }

  cancelJob(id: string): Promise<Job> {
    return this.request<Job>(`/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST', body: {} });
  }

  jobLogs(id: string, params: { stream?: 'stdout' | 'stderr'; offset?: number; limit?: number } = {}): Promise<JobLog> {
    return this.request<JobLog>(`/jobs/${encodeURIComponent(id)}/logs`, { params });
  }

  datasets(params: Params = {}): Promise<ListPage<Dataset>> {
    return this.request<ListPage<Dataset>>('/datasets', { params: { limit: 100, ...params } });
  }

  dataset(id: string): Promise<Dataset> {
    return this.request<Dataset>(`/datasets/${encodeURIComponent(id)}`);
  }

  validations(datasetId: string, limit = 1): Promise<{ items: Validation[] }> {
    return this.request<{ items: Validation[] }>(`/datasets/${encodeURIComponent(datasetId)}/validations`, { params: { limit } });
  }

  validate(datasetId: string): Promise<{ validation: Validation }> {
    return this.request<{ validation: Validation }>(`/datasets/${encodeURIComponent(datasetId)}/validate`, { method: 'POST', body: {} });
  }

  models(): Promise<Model[]> {
    return this.list<Model>('/models');
  }

  modelVersions(modelId: string, limit = 20): Promise<ModelVersion[]> {
    return this.list<ModelVersion>(`/models/${encodeURIComponent(modelId)}/versions`, { limit });
  }

  deploy(body: { name: string; model_id: string; model_version?: number }): Promise<Deployment> {
    return this.request<Deployment>('/deployments', { method: 'POST', body });
  }

  deployments(): Promise<Deployment[]> {
    return this.list<Deployment>('/deployments');
  }

  /** Stop (or start) a deployment's replicas: 202, the state follows on `deployment:<id>`. */
  deploymentAction(id: string, action: 'stop' | 'start'): Promise<Deployment> {
    return this.request<Deployment>(`/deployments/${encodeURIComponent(id)}/${action}`, { method: 'POST', body: {} });
  }

  predict(id: string, body: unknown): Promise<PredictResult> {
    return this.request<PredictResult>(`/deployments/${encodeURIComponent(id)}/predict`, { method: 'POST', body });
  }

  /** Metrics, hyperparameters and lineage of `versions` of a model, side by side. */
  compareVersions(modelId: string, versions: number[]): Promise<ModelCompare> {
    return this.request<ModelCompare>(`/models/${encodeURIComponent(modelId)}/compare`, { params: { versions: versions.join(',') } });
  }

  agents(params: Params = {}): Promise<Agent[]> {
    return this.list<Agent>('/agents', params);
  }

  createAgent(body: AgentCreate): Promise<Agent> {
    return this.request<Agent>('/agents', { method: 'POST', body });
  }

  updateAgent(id: string, body: AgentUpdate): Promise<Agent> {
    return this.request<Agent>(`/agents/${encodeURIComponent(id)}`, { method: 'PATCH', body });
  }

  deleteAgent(id: string): Promise<void> {
    return this.request<void>(`/agents/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  /** A plain list route (models, deployments, agents): its items, or [] for an empty page. */
  async list<T>(path: string, params: Params = {}): Promise<T[]> {
    const page = await this.request<ListPage<T> | T[]>(path, { params: { limit: 100, ...params } });
    return Array.isArray(page) ? page : page?.items ?? [];
  }
}
