/**
 * Types of the tablevault REST API, mirroring the schemas of docs/openapi.yaml.
 *
 * Times are seconds since the Unix epoch, as the server sends them.
 */

/** What a caller can ask a live process to do at its next checkpoint. */
export type Action = 'pause' | 'resume' | 'stop';

/** Where a request is in its life; pending and acknowledged ones are still in flight. */
export type RequestState = 'pending' | 'acknowledged' | 'done' | 'expired' | 'cancelled';

/** Running and paused for live processes; the others once a process has ended. */
export type ProcessStatus =
  'running' | 'paused' | 'finished' | 'failed' | 'stopped' | 'terminated' | 'crashed';

/** How a recorded cell or script ended, or `running` while it runs. */
export type CodeItemStatus = 'running' | 'ok' | 'error' | 'stopped' | 'interrupted' | 'lost';

/** A pause, resume or stop request addressed to one run of a process. */
export interface IRequest {
  /** Microseconds since the epoch; also orders requests. */
  id: number;
  run_id: string;
  target_name: string;
  action: Action;
  state: RequestState;
  /** Who asked, as `user@host (process name)`. */
  requester: string;
  created_at: number;
  updated_at: number;
}

/** One recorded notebook cell or script run. */
export interface ICodeItem {
  id: number;
  index: number;
  kind: 'cell' | 'script';
  source: string;
  status: CodeItemStatus;
  execution_count?: number | null;
  cell_id?: string | null;
  started_at: number;
  /** Seconds, once the item has ended. */
  duration?: number | null;
  error_type?: string | null;
  error_message?: string | null;
  traceback?: string | null;
  exit_code?: number | null;
}

/** A process registered in the store: the latest run under its name. */
export interface IProcess {
  /** Unique name; a notebook path may contain `/`. */
  name: string;
  run_id: string;
  kind: 'notebook' | 'script';
  user_id: string;
  host: string;
  pid: number;
  status: ProcessStatus;
  alive: boolean;
  description?: string;
  parent_name?: string | null;
  parent_index?: number | null;
  started_at: number;
  ended_at?: number | null;
  heartbeat_at?: number | null;
  last_checkpoint_at?: number | null;
  checkpoint_count?: number;
  exit_status?: number | null;
  stopped_by?: string | null;
  pending_request?: IRequest | null;
  current_item?: ICodeItem | null;
  /** Only when the process runs on the server's host. */
  cpu_percent?: number | null;
  /** Resident memory in bytes; only when the process runs on the server's host. */
  memory_rss?: number | null;
}

/** A process with its recent history, as `GET processes/{name}` answers. */
export interface IProcessDetail extends IProcess {
  /** The most recent code items, newest first. */
  code_items: ICodeItem[];
  /** The most recent requests, newest first. */
  requests: IRequest[];
}

/** The body of `GET processes`. */
export interface IProcessList {
  processes: IProcess[];
}

/** The body of `POST processes/{name}/{action}`. */
export interface IActionReply {
  request: IRequest;
}

/** The body of every error answer. */
export interface IErrorBody {
  message: string;
  reason?: string | null;
}
