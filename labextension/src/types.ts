/** Shapes of the AI Studio API the sidebar reads (a subset of the OpenAPI document). */

export interface ListPage<T> {
  items: T[];
  next_cursor?: string | null;
}

export type JobState = 'queued' | 'starting' | 'running' | 'succeeded' | 'failed' | 'canceled' | 'lost';

export const JOB_STATES: JobState[] = ['queued', 'starting', 'running', 'succeeded', 'failed', 'canceled', 'lost'];
export const TERMINAL_STATES: JobState[] = ['succeeded', 'failed', 'canceled', 'lost'];

export interface Job {
  id: string;
  owner: string;
  name: string;
  kind: string;
  state: JobState;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  exit_reason: string | null;
  progress?: number | null;
  cancel_requested_at?: string | null;
}

export interface JobLog {
  stream: 'stdout' | 'stderr';
  offset: number;
  next_offset: number;
  size: number;
  text: string;
  complete: boolean;
}

export interface Dataset {
  id: string;
  owner: string;
  name: string;
  description: string;
  tags: string[];
  latest_version: number;
  size_bytes: number;
  visibility: string;
  created_at: string;
  updated_at: string;
}

export interface Validation {
  id: string;
  dataset_id: string;
  version: number;
  state: string;
  passed: boolean | null;
  error?: string | null;
}

export interface Me {
  username: string;
  display_name: string;
  tier: string;
  teams: string[];
  quotas: {
    storage_bytes: number;
    concurrent_jobs: number;
    gpus_per_job: number;
    gpu_hours_per_month: number;
    requests_per_minute: number;
    upload_bytes: number;
  };
  usage: {
    period: string;
    storage_bytes: number;
    gpu_seconds: number;
    cost: number;
    active_jobs: number;
    gpu_seconds_running?: number;
    price_per_gpu_hour?: number;
  };
}

/** One event of the live events WebSocket. */
export interface StudioEvent {
  topic: string;
  seq: number;
  type: string;
  data: any;
  coalesced?: boolean;
}

export interface ReplicaStatus {
  index: number;
  state: string;
  pid: number | null;
  restarts: number;
  model_version: number | null;
  last_error: string | null;
}

/** What predict takes, from the model version's spec. */
export type InputSchema =
  | { kind: 'records'; features: { name: string; dtype: string }[] }
  | { kind: 'tensor'; shape: (number | null)[]; dtype?: string };

export interface Deployment {
  id: string;
  name: string;
  model_id: string;
  model_version: number | null;
  replicas: number;
  state: string;
  status_message: string | null;
  desired_state: 'running' | 'stopped';
  ready_replicas: number;
  replica_status: ReplicaStatus[];
  input_schema: InputSchema | null;
  created_at?: string;
  updated_at?: string;
}

export interface PredictResult {
  predictions: unknown[];
  model_version: number;
  deployment_id: string;
}

export interface Model {
  id: string;
  name: string;
  description?: string;
  task?: string | null;
  latest_version: number;
  created_at?: string;
  updated_at?: string;
}

export interface ModelVersion {
  id: string;
  model_id: string;
  version: number;
  stage: string;
  metrics: Record<string, unknown>;
  created_at?: string;
}

/** One version's column of `GET /models/{id}/compare`. */
export interface CompareColumn {
  version: number;
  stage: string;
  created_at: string;
  job_id?: string | null;
}

/** Versions side by side: every row holds one value per column, in `versions` order (null: absent). */
export interface ModelCompare {
  model_id: string;
  versions: CompareColumn[];
  metrics: Record<string, (number | null)[]>;
  hyperparameters: Record<string, unknown[]>;
  lineage: Record<string, unknown[]>;
  /** 'hyperparameters.<key>' / 'lineage.<key>' rows whose values are not all equal. */
  differs: string[];
}

export type AgentPlanner = 'react' | 'plan_and_execute' | 'single_shot';
export const AGENT_PLANNERS: AgentPlanner[] = ['react', 'plan_and_execute', 'single_shot'];
export type Visibility = 'private' | 'team' | 'public';

export interface AgentLimits {
  max_steps: number;
  max_seconds: number;
  max_tool_calls: number;
  max_cost_usd: number;
  max_gpus: number;
}

export interface Agent {
  id: string;
  owner: string;
  name: string;
  description: string;
  instructions: string;
  tools: string[];
  planner: AgentPlanner;
  llm: string | null;
  limits: AgentLimits;
  visibility: Visibility;
  team: string | null;
  created_at: string;
  updated_at: string;
}

/** What `POST /agents` takes; the server fills in what is left out. */
export interface AgentCreate {
  name: string;
  description?: string;
  instructions?: string;
  tools?: string[];
  planner?: AgentPlanner;
  llm?: string | null;
  limits?: Partial<AgentLimits>;
  visibility?: Visibility;
  team?: string | null;
}

export type AgentUpdate = Partial<AgentCreate>;
