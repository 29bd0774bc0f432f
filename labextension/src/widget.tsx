import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Time } from '@jupyterlab/coreutils';
import {
  Button,
  caretDownIcon,
  caretRightIcon,
  ReactWidget,
  refreshIcon,
  ToolbarButtonComponent,
  UseSignal
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React, { useState } from 'react';

import { bytes, duration, firstLines, plainTraceback, timeSince } from './format';
import { tablevaultIcon } from './icon';
import { Badge, badgeOf, canRequest, ProcessModel } from './model';
import { Action, ICodeItem, IProcess, IProcessDetail } from './tokens';

/** The id of the panel, stable for browser tests and the layout restorer. */
export const PANEL_ID = 'tablevault-panel';

/** Lines of source shown for each recorded code item. */
const SOURCE_LINES = 3;

const BADGE_LABELS: Record<Badge, string> = {
  running: 'running',
  paused: 'paused',
  'pause-requested': 'pause requested',
  'resume-requested': 'resume requested',
  'stop-requested': 'stop requested',
  finished: 'finished',
  failed: 'failed',
  stopped: 'stopped',
  terminated: 'terminated',
  crashed: 'crashed'
};

const ACTION_LABELS: Record<Action, string> = {
  pause: 'Pause',
  resume: 'Resume',
  stop: 'Stop'
};

const ACTION_TITLES: Record<Action, string> = {
  pause: 'Pause at the next checkpoint',
  resume: 'Carry on from the pause',
  stop: 'Stop at the next checkpoint'
};

/**
 * The left sidebar panel listing the tablevault processes.
 *
 * It tells the model whether it is on screen, so that polling stands by while it is hidden.
 */
export class ProcessPanel extends ReactWidget {
  constructor(readonly model: ProcessModel) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-tv-panel');
    this.title.icon = tablevaultIcon;
    this.title.caption = 'TableVault processes';
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>{() => <ProcessView model={this.model} />}</UseSignal>
    );
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.model.visible = this.isVisible;
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.visible = false;
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.visible = true;
  }

  protected onAfterHide(msg: Message): void {
    this.model.visible = false;
    super.onAfterHide(msg);
  }
}

function ProcessView({ model }: { model: ProcessModel }): JSX.Element {
  return (
    <div className="jp-tv-view">
      <Toolbar model={model} />
      <Status model={model} />
      {model.connection !== 'missing' && (
        <ul
          className={`jp-tv-list${model.connection === 'ready' ? '' : ' jp-mod-stale'}`}
          aria-label="Processes"
        >
          {model.processes.map(process => (
            <ProcessRow
              key={`${process.name}\n${process.run_id}`}
              model={model}
              process={process}
            />
          ))}
        </ul>
      )}
    </div>
  );
}

function Toolbar({ model }: { model: ProcessModel }): JSX.Element {
  const allTitle = model.showAll
    ? 'Showing every process; click to show live ones only'
    : 'Showing live processes; click to include ended ones';
  return (
    <div className="jp-tv-toolbar">
      <input
        className="jp-tv-filter"
        type="search"
        placeholder="Filter"
        aria-label="Filter processes"
        value={model.filter}
        onChange={event => {
          model.filter = event.target.value;
        }}
      />
      <button
        className="jp-tv-all"
        type="button"
        aria-pressed={model.showAll}
        title={allTitle}
        onClick={() => {
          model.showAll = !model.showAll;
        }}
      >
        <span className={model.showAll ? '' : 'jp-tv-mod-on'}>live</span>
        <span className={model.showAll ? 'jp-tv-mod-on' : ''}>all</span>
      </button>
      <ToolbarButtonComponent
        className="jp-tv-refresh"
        icon={refreshIcon}
        tooltip="Refresh now"
        onClick={() => void model.refresh()}
      />
    </div>
  );
}

/** The line under the toolbar: loading, empty list, or why the list could not be fetched. */
function Status({ model }: { model: ProcessModel }): JSX.Element | null {
  switch (model.connection) {
    case 'loading':
      return <p className="jp-tv-message">Loading processes…</p>;
    case 'missing':
      return (
        <p className="jp-tv-message jp-tv-missing">
          The tablevault server extension is not installed or enabled.
        </p>
      );
    case 'unreachable':
      return (
        <p className="jp-tv-message jp-tv-unreachable">
          The Jupyter server cannot be reached; retrying. The list below may be out of date.
        </p>
      );
    case 'failed':
      return (
        <p className="jp-tv-message jp-tv-failed">Could not list the processes: {model.error}</p>
      );
    case 'ready':
      break;
  }
  if (model.allProcesses.length === 0) {
    return (
      <p className="jp-tv-message jp-tv-empty">
        {model.showAll ? 'No processes recorded yet.' : 'No live processes.'} Run{' '}
        <code>%load_ext tablevault</code> in a notebook.
      </p>
    );
  }
  if (model.processes.length === 0) {
    return <p className="jp-tv-message jp-tv-empty">No process matches “{model.filter}”.</p>;
  }
  return null;
}

function ProcessRow(props: { model: ProcessModel; process: IProcess }): JSX.Element {
  const { model, process } = props;
  const badge = badgeOf(process);
  const expanded = model.expanded === process.name;
  const caret = expanded ? caretDownIcon : caretRightIcon;
  const toggle = () => model.toggleExpanded(process.name);

  return (
    <li
      className={`jp-tv-row${expanded ? ' jp-mod-expanded' : ''}`}
      data-name={process.name}
      data-status={badge}
      onClick={toggle}
    >
      <div
        className="jp-tv-summary"
        role="button"
        tabIndex={0}
        aria-expanded={expanded}
        onKeyDown={event => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            toggle();
          }
        }}
      >
        <div className="jp-tv-title">
          <caret.react className="jp-tv-caret" tag="span" />
          <span className="jp-tv-name" title={process.name}>
            {process.name}
          </span>
          <span className={`jp-tv-badge jp-tv-badge-${badge}`}>{BADGE_LABELS[badge]}</span>
        </div>
        <div className="jp-tv-meta">
          <span className="jp-tv-kind">{process.kind}</span>
          <span className="jp-tv-user">
            {process.user_id}@{process.host}
          </span>
          <span className="jp-tv-pid">pid {process.pid}</span>
        </div>
        <div className="jp-tv-meta">
          <span className="jp-tv-checkpoint">
            {process.last_checkpoint_at
              ? `last checkpoint ${timeSince(process.last_checkpoint_at)}`
              : 'no checkpoint yet'}
          </span>
          {process.cpu_percent !== null && process.cpu_percent !== undefined && (
            <span className="jp-tv-cpu">{process.cpu_percent.toFixed(1)} % CPU</span>
          )}
          {process.memory_rss !== null && process.memory_rss !== undefined && (
            <span className="jp-tv-memory">{bytes(process.memory_rss)}</span>
          )}
        </div>
      </div>
      {process.alive && <Actions model={model} process={process} />}
      {expanded && <Detail detail={model.detail} error={model.detailError} process={process} />}
    </li>
  );
}

function Actions(props: { model: ProcessModel; process: IProcess }): JSX.Element {
  const { model, process } = props;
  const [busy, setBusy] = useState(false);

  const run = async (action: Action) => {
    if (action === 'stop' && !(await confirmStop(process))) {
      return;
    }
    setBusy(true);
    try {
      await model.requestAction(process, action);
    } catch (error) {
      await showErrorMessage(`Could not ${action} ${process.name}`, error as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="jp-tv-actions" onClick={event => event.stopPropagation()}>
      {(['pause', 'resume', 'stop'] as Action[]).map(action => (
        <Button
          key={action}
          className={`jp-tv-action jp-tv-${action}`}
          small
          minimal
          title={ACTION_TITLES[action]}
          disabled={busy || !canRequest(process, action)}
          onClick={() => void run(action)}
        >
          {ACTION_LABELS[action]}
        </Button>
      ))}
    </div>
  );
}

async function confirmStop(process: IProcess): Promise<boolean> {
  const result = await showDialog({
    title: 'Stop process?',
    body:
      `Ask ${process.name} (${process.user_id}@${process.host}, pid ${process.pid}) to stop ` +
      'at its next checkpoint? It cannot be resumed afterwards.',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
  });
  return result.button.accept;
}

function Detail(props: {
  detail: IProcessDetail | null;
  error: string | null;
  process: IProcess;
}): JSX.Element {
  const { detail, error, process } = props;
  const request = process.pending_request;
  let items: JSX.Element;
  if (error) {
    items = <p className="jp-tv-message jp-tv-failed">{error}</p>;
  } else if (!detail) {
    items = <p className="jp-tv-message">Loading recent code…</p>;
  } else if (detail.code_items.length === 0) {
    items = <p className="jp-tv-message">No code recorded yet.</p>;
  } else {
    items = (
      <ol className="jp-tv-items">
        {detail.code_items.map(item => (
          <CodeItem key={item.id} item={item} />
        ))}
      </ol>
    );
  }

  return (
    <div className="jp-tv-detail" onClick={event => event.stopPropagation()}>
      <dl className="jp-tv-facts">
        {process.description && <Fact term="description" value={process.description} />}
        <Fact term="started" value={Time.format(new Date(process.started_at * 1000))} />
        {process.ended_at && (
          <Fact term="ended" value={Time.format(new Date(process.ended_at * 1000))} />
        )}
        {process.stopped_by && <Fact term="stopped by" value={process.stopped_by} />}
        {request && (
          <Fact
            term="request"
            value={`${request.action} (${request.state}) by ${request.requester}`}
          />
        )}
        {process.parent_name && (
          <Fact
            term="started from"
            value={`${process.parent_name}, item ${process.parent_index ?? '?'}`}
          />
        )}
      </dl>
      {items}
    </div>
  );
}

function Fact({ term, value }: { term: string; value: string }): JSX.Element {
  return (
    <>
      <dt>{term}</dt>
      <dd>{value}</dd>
    </>
  );
}

function CodeItem({ item }: { item: ICodeItem }): JSX.Element {
  const failed = Boolean(item.error_type || item.error_message);
  return (
    <li
      className={`jp-tv-item${failed ? ' jp-tv-item-failed' : ''}`}
      data-index={item.index}
      data-status={item.status}
    >
      <div className="jp-tv-item-header">
        <span className="jp-tv-item-index">
          {item.kind} {item.index}
          {item.execution_count !== null && item.execution_count !== undefined
            ? ` [${item.execution_count}]`
            : ''}
        </span>
        <span className="jp-tv-item-status">{item.status}</span>
        {item.duration !== null && item.duration !== undefined && (
          <span className="jp-tv-item-duration">{duration(item.duration)}</span>
        )}
        {item.exit_code !== null && item.exit_code !== undefined && (
          <span className="jp-tv-item-exit">exit {item.exit_code}</span>
        )}
      </div>
      <pre className="jp-tv-source">{firstLines(item.source, SOURCE_LINES)}</pre>
      {failed && (
        <div className="jp-tv-error">
          <div className="jp-tv-error-line">
            {[item.error_type, item.error_message].filter(Boolean).join(': ')}
          </div>
          {item.traceback && (
            <details className="jp-tv-traceback">
              <summary>Traceback</summary>
              <pre>{plainTraceback(item.traceback)}</pre>
            </details>
          )}
        </div>
      )}
    </li>
  );
}
