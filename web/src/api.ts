// droverd's HTTP JSON API (docs/http-api.md): the shapes the app reads, in protobuf's JSON
// mapping (lowerCamelCase, enums by name, int64 as strings, defaults omitted), and one
// fetch wrapper that sends the session's CSRF token and turns error bodies into ApiError.

export type Role = "VIEWER" | "USER" | "ADMIN" | "ROLE_UNSPECIFIED";

export interface User {
  name: string;
  role?: Role;
  createTime?: string;
  revoked?: boolean;
}

export interface Session {
  user: User;
  csrfToken: string;
}

export interface Resources {
  cpus?: number;
  memoryMib?: string;
  gpus?: number;
  shmMib?: string;
}

export interface JobSpec {
  name?: string;
  experiment?: string;
  tags?: Record<string, string>;
  sourceSnapshot?: string;
  entryScript?: string;
  arguments?: Array<{ value?: string; data?: { datastore?: string; path?: string; mode?: string } }>;
  computeTarget?: string;
  environment?: { image?: string; pipPackages?: string[]; condaPackages?: string[]; env?: Record<string, string>; useGpu?: boolean };
  nodeCount?: number;
  processCountPerNode?: number;
  distributedBackend?: string;
  resources?: Resources;
  maxRunDuration?: string;
  priority?: number;
  maxRetries?: number;
}

export interface RankExit {
  rank?: number;
  node?: string;
  exitCode?: number;
  signal?: number;
  oomKilled?: boolean;
  endTime?: string;
}

export interface Gpu {
  index?: number;
  uuid?: string;
  name?: string;
  memoryMib?: string;
}

export interface JobStatus {
  state?: string;
  reason?: string;
  cause?: string;
  message?: string;
  version?: string;
  attempt?: number;
  updateTime?: string;
  startTime?: string;
  endTime?: string;
  nodes?: string[];
  exits?: RankExit[];
  outputsSize?: string;
  gpus?: Array<{ node?: string; gpus?: Gpu[] }>;
  logsRemovedTime?: string;
  outputsRemovedTime?: string;
}

export interface Job {
  id: string;
  spec?: JobSpec;
  status?: JobStatus;
  createTime?: string;
  owner?: string;
}

export interface ListJobsResponse {
  jobs?: Job[];
  nextPageToken?: string;
}

export interface Node {
  name: string;
  state?: string;
  reason?: string;
  addresses?: string[];
  capacity?: { cpus?: number; memoryMib?: string; gpus?: number };
  allocated?: { cpus?: number; memoryMib?: string; gpus?: number };
  labels?: Record<string, string>;
  runningJobs?: string[];
  agentVersion?: string;
  registerTime?: string;
  lastSeenTime?: string;
  gpus?: Gpu[];
}

export interface ListNodesResponse {
  nodes?: Node[];
}

/** One series of /metrics: columns; int64 steps may come as strings, NaN as "NaN". */
export interface MetricSeriesJson {
  name: string;
  source?: string;
  rank?: number;
  steps?: Array<string | number>;
  values?: Array<string | number>;
  times?: Array<string | number>;
  totalPoints?: string | number;
  thinned?: boolean;
  method?: string;
  /** Steps per bucket when thinned (int64, a string). */
  bucketSteps?: string | number;
}

export interface MetricsResponse {
  attempt?: string | number;
  series?: MetricSeriesJson[];
  droppedRecords?: string;
  cappedStreams?: number;
}

export interface OutputFile {
  path: string;
  size?: string;
}

export interface Experiment {
  name: string;
  runs?: number;
  lastSubmitTime?: string;
}

/** A sweep's parameter value: a number or a string. */
export interface ParameterValue {
  number?: number | string;
  text?: string;
}

/** Why the early-termination policy stopped a trial. */
export interface TrialStop {
  rule?: string;
  interval?: string;
  step?: string;
  value?: number | string;
  threshold?: number | string;
  reference?: number | string;
  compared?: string;
  message?: string;
  stopTime?: string;
}

export interface SweepTrial {
  index?: string;
  jobId?: string;
  parameters?: Record<string, ParameterValue>;
  jobState?: string;
  /** The best finite primary metric value rank 0 logged; absent while none. */
  result?: number | string;
  intervals?: string;
  stop?: TrialStop;
  createTime?: string;
}

export interface SweepSpec {
  name?: string;
  trialTemplate?: JobSpec;
  searchSpace?: Record<string, Record<string, unknown>>;
  sampling?: { method?: string; seed?: string };
  primaryMetricName?: string;
  primaryMetricGoal?: string;
  maxTotalTrials?: number;
  maxConcurrentTrials?: number;
  maxDuration?: string;
  maxTrialDuration?: string;
  earlyTermination?: Record<string, unknown>;
}

export interface Sweep {
  id: string;
  spec?: SweepSpec;
  owner?: string;
  status?: { state?: string; reason?: string; message?: string; updateTime?: string; endTime?: string };
  createTime?: string;
  /** GetSweep only; empty in a list. */
  trials?: SweepTrial[];
  bestTrialIndex?: string;
  trialCount?: string;
  bestResult?: number | string;
}

export interface ListSweepsResponse {
  sweeps?: Sweep[];
  nextPageToken?: string;
}

/** A user's role without the enum's prefix, if any: "ADMIN", "USER", "VIEWER". */
export function roleOf(u: User | undefined): string {
  return (u?.role ?? "").replace(/^ROLE_/, "");
}

/** An error answer of the API: the HTTP status and the gRPC code's name. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

let csrfToken = "";
let onUnauthenticated: () => void = () => {};

/** The CSRF token of the current session, sent with every POST. */
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when a request comes back 401 (no session, or it expired). */
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

/** GETs or POSTs `path` (under /api/v1) and returns the parsed JSON body (undefined for 204). */
export async function api<T>(path: string, init: { method?: "GET" | "POST"; body?: unknown } = {}): Promise<T> {
  const method = init.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    if (csrfToken) headers["X-Drover-CSRF"] = csrfToken;
  }
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: method === "POST" ? JSON.stringify(init.body ?? {}) : undefined,
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: any = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, body?.error?.code ?? `HTTP_${res.status}`,
      body?.error?.message ?? (text.slice(0, 200) || res.statusText));
    if (res.status === 401 && !path.startsWith("/login")) onUnauthenticated();
    throw err;
  }
  return body as T;
}

/** Query string from a list of pairs; repeated names allowed, empty values left out. */
export function query(pairs: Array<[string, string | number | undefined]>): string {
  const q = new URLSearchParams();
  for (const [k, v] of pairs) if (v !== undefined && v !== "") q.append(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function jobPath(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

export function sweepPath(id: string): string {
  return `/sweeps/${encodeURIComponent(id)}`;
}
