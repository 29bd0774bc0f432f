import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { IPoll, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { APIError, requestAPI } from './request';
import {
  Action,
  IActionReply,
  IProcess,
  IProcessDetail,
  IProcessList,
  IRequest,
  ProcessStatus
} from './tokens';

/** Seconds between refreshes when the settings say nothing. */
export const DEFAULT_REFRESH_INTERVAL = 2;

/** The shortest refresh interval accepted, in seconds. */
export const MIN_REFRESH_INTERVAL = 0.5;

/** The longest wait between two tries while the server fails, in milliseconds. */
const BACKOFF_CAP = 30 * 1000;

/**
 * How the last call to the server went.
 *
 * - `loading`: nothing has been fetched yet.
 * - `ready`: the list is fresh.
 * - `missing`: the API answered 404, so the server extension is not installed or enabled.
 * - `unreachable`: the Jupyter server did not answer at all.
 * - `failed`: the API answered with another error; see `ProcessModel.error`.
 */
export type Connection = 'loading' | 'ready' | 'missing' | 'unreachable' | 'failed';

/** The badge of a row: the process status, or the request it is about to act on. */
export type Badge = ProcessStatus | 'pause-requested' | 'resume-requested' | 'stop-requested';

/** The action of a request the process has not carried out yet, or null. */
export function pendingAction(process: IProcess): Action | null {
  const request = process.pending_request;
  if (!process.alive || !request) {
    return null;
  }
  return request.state === 'pending' || request.state === 'acknowledged' ? request.action : null;
}

/** The badge to show for a process. */
export function badgeOf(process: IProcess): Badge {
  const pending = pendingAction(process);
  if (pending === 'stop') {
    return 'stop-requested';
  }
  if (pending === 'pause' && process.status === 'running') {
    return 'pause-requested';
  }
  if (pending === 'resume' && process.status === 'paused') {
    return 'resume-requested';
  }
  return process.status;
}

/** Whether asking the process for an action makes sense in its present state. */
export function canRequest(process: IProcess, action: Action): boolean {
  if (!process.alive) {
    return false;
  }
  const pending = pendingAction(process);
  switch (action) {
    case 'pause':
      return process.status === 'running' && pending === null;
    case 'resume':
      return pending === 'pause' || (process.status === 'paused' && pending === null);
    case 'stop':
      return pending !== 'stop';
  }
}

/**
 * The processes of the tablevault store, refreshed by one poll.
 *
 * The poll stands by while the panel or the browser tab is hidden, and backs off up to
 * 30 seconds while the server fails or cannot be reached. The detail of the one expanded
 * row is fetched in the same tick as the list.
 */
export class ProcessModel implements IDisposable {
  constructor(options: ProcessModel.IOptions = {}) {
    this._serverSettings = options.serverSettings ?? ServerConnection.makeSettings();

    const interval = toMilliseconds(options.refreshInterval ?? DEFAULT_REFRESH_INTERVAL);
    this._poll = new Poll<ProcessModel.ISnapshot, Error>({
      factory: () => this._fetch(),
      frequency: { interval, backoff: true, max: Math.max(interval, BACKOFF_CAP) },
      name: 'tablevault:processes',
      standby: () => (this._visible ? 'when-hidden' : true)
    });
    this._poll.ticked.connect(this._onTicked, this);
  }

  /** Emitted whenever anything the panel shows has changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** How the last call to the server went. */
  get connection(): Connection {
    return this._connection;
  }

  /** The message of the last failed call, when `connection` is `failed`. */
  get error(): string | null {
    return this._error;
  }

  /** Every process of the last answer, most recently started first. */
  get allProcesses(): ReadonlyArray<IProcess> {
    return this._processes;
  }

  /** The processes that match the filter text. */
  get processes(): ReadonlyArray<IProcess> {
    const needle = this._filter.trim().toLowerCase();
    if (!needle) {
      return this._processes;
    }
    return this._processes.filter(process =>
      [process.name, process.kind, process.user_id, process.host, process.description ?? '']
        .join('\n')
        .toLowerCase()
        .includes(needle)
    );
  }

  /** Text that a process's name, kind, user, host or description must contain. */
  get filter(): string {
    return this._filter;
  }
  set filter(value: string) {
    if (value === this._filter) {
      return;
    }
    this._filter = value;
    this._changed.emit();
  }

  /** Whether ended processes are listed too, not only live ones. */
  get showAll(): boolean {
    return this._showAll;
  }
  set showAll(value: boolean) {
    if (value === this._showAll) {
      return;
    }
    this._showAll = value;
    this._changed.emit();
    void this._poll.refresh();
  }

  /** The name of the expanded row, or null. */
  get expanded(): string | null {
    return this._expanded;
  }

  /** The recent history of the expanded row, once fetched. */
  get detail(): IProcessDetail | null {
    return this._detail;
  }

  /** Why the history of the expanded row could not be fetched, or null. */
  get detailError(): string | null {
    return this._detailError;
  }

  /** Whether the panel is on screen; the poll stands by while it is not. */
  get visible(): boolean {
    return this._visible;
  }
  set visible(value: boolean) {
    if (value === this._visible) {
      return;
    }
    this._visible = value;
    if (value) {
      void this._poll.refresh();
    }
  }

  /** Seconds between two refreshes, at least `MIN_REFRESH_INTERVAL`. */
  get refreshInterval(): number {
    return this._poll.frequency.interval / 1000;
  }
  set refreshInterval(seconds: number) {
    const interval = toMilliseconds(seconds);
    this._poll.frequency = {
      ...this._poll.frequency,
      interval,
      max: Math.max(interval, BACKOFF_CAP)
    };
  }

  /** Whether the model has been disposed. */
  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /** Expand the named row, or collapse it if it is the expanded one. */
  toggleExpanded(name: string): void {
    this._expanded = this._expanded === name ? null : name;
    this._detail = null;
    this._detailError = null;
    this._changed.emit();
    if (this._expanded !== null) {
      void this._poll.refresh();
    }
  }

  /** Fetch the list now; resolves once the answer, or the failure, is recorded. */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick;
  }

  /**
   * Ask a process to pause, resume or stop at its next checkpoint.
   *
   * The request names the run the panel showed, so the server refuses it with 409 if another
   * run has taken the name meanwhile.
   *
   * @returns The stored request.
   * @throws {APIError} With the server's message when the request is refused.
   */
  async requestAction(process: IProcess, action: Action): Promise<IRequest> {
    const path = `processes/${encodeURIComponent(process.name)}/${action}`;
    const init = { method: 'POST', body: JSON.stringify({ run_id: process.run_id }) };

    const reply = await requestAPI<IActionReply>(path, init, this._serverSettings);

    this._processes = this._processes.map(item =>
      item.name === process.name && item.run_id === process.run_id
        ? { ...item, pending_request: reply.request }
        : item
    );
    this._changed.emit();
    void this._poll.refresh();
    return reply.request;
  }

  /** Ask a running process to pause at its next checkpoint. */
  pause(process: IProcess): Promise<IRequest> {
    return this.requestAction(process, 'pause');
  }

  /** Ask a paused process to carry on. */
  resume(process: IProcess): Promise<IRequest> {
    return this.requestAction(process, 'resume');
  }

  /** Ask a live process to stop at its next checkpoint. */
  stop(process: IProcess): Promise<IRequest> {
    return this.requestAction(process, 'stop');
  }

  /** Stop polling and release the signals. */
  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _fetch(): Promise<ProcessModel.ISnapshot> {
    const showAll = this._showAll;
    const expanded = this._expanded;

    const [list, detail] = await Promise.all([
      requestAPI<IProcessList>(showAll ? 'processes?all=1' : 'processes', {}, this._serverSettings),
      expanded === null ? null : this._fetchDetail(expanded)
    ]);

    return { showAll, processes: list.processes, expanded, ...detail };
  }

  /**
   * Fetch the history of one process.
   *
   * An error answer is kept for the expanded row rather than failing the whole tick; a
   * network error still fails it, as the list call fails with it.
   */
  private async _fetchDetail(
    name: string
  ): Promise<Pick<ProcessModel.ISnapshot, 'detail' | 'detailError'>> {
    const path = `processes/${encodeURIComponent(name)}`;
    try {
      const detail = await requestAPI<IProcessDetail>(path, {}, this._serverSettings);
      return { detail };
    } catch (error) {
      if (error instanceof APIError) {
        return { detailError: error.message };
      }
      throw error;
    }
  }

  private _onTicked(
    _sender: Poll<ProcessModel.ISnapshot, Error>,
    state: IPoll.State<ProcessModel.ISnapshot, Error, 'standby'>
  ): void {
    // The poll's payload is the factory's answer after a success and its error after a failure.
    switch (state.phase) {
      case 'resolved':
      case 'reconnected':
        this._apply(state.payload as ProcessModel.ISnapshot);
        break;
      case 'rejected':
        this._fail(state.payload as Error | null);
        break;
      default:
        break;
    }
  }

  private _apply(snapshot: ProcessModel.ISnapshot): void {
    if (snapshot.showAll !== this._showAll || snapshot.expanded !== this._expanded) {
      void this._poll.refresh();
      return;
    }

    this._processes = snapshot.processes;
    this._detail = snapshot.detail ?? null;
    this._detailError = snapshot.detailError ?? null;
    this._connection = 'ready';
    this._error = null;
    this._changed.emit();
  }

  private _fail(error: Error | null): void {
    if (error instanceof APIError && error.status === 404) {
      this._connection = 'missing';
      this._processes = [];
    } else if (error instanceof ServerConnection.NetworkError) {
      this._connection = 'unreachable';
    } else {
      this._connection = 'failed';
    }
    this._error = error?.message ?? null;
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _connection: Connection = 'loading';
  private _detail: IProcessDetail | null = null;
  private _detailError: string | null = null;
  private _error: string | null = null;
  private _expanded: string | null = null;
  private _filter = '';
  private _poll: Poll<ProcessModel.ISnapshot, Error>;
  private _processes: IProcess[] = [];
  private _serverSettings: ServerConnection.ISettings;
  private _showAll = false;
  private _visible = false;
}

/** The types of the process model. */
export namespace ProcessModel {
  /** Options to create a model. */
  export interface IOptions {
    /** Seconds between refreshes; defaults to `DEFAULT_REFRESH_INTERVAL`. */
    refreshInterval?: number;
    /** Server settings; defaults to `ServerConnection.makeSettings()`. */
    serverSettings?: ServerConnection.ISettings;
  }

  /** What one poll tick fetched, with the choices it was fetched for. */
  export interface ISnapshot {
    showAll: boolean;
    processes: IProcess[];
    expanded: string | null;
    detail?: IProcessDetail;
    detailError?: string;
  }
}

function toMilliseconds(seconds: number): number {
  const valid = Number.isFinite(seconds) ? seconds : DEFAULT_REFRESH_INTERVAL;
  return Math.round(Math.max(valid, MIN_REFRESH_INTERVAL) * 1000);
}
