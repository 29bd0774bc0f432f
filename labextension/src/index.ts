import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { refreshIcon } from '@jupyterlab/ui-components';

import { tablevaultIcon } from './icon';
import { DEFAULT_REFRESH_INTERVAL, ProcessModel } from './model';
import { PANEL_ID, ProcessPanel } from './widget';

/** The plugin id; its settings schema is labextension/schema/plugin.json. */
const PLUGIN_ID = 'tablevault:plugin';

/** The commands of the panel, all in the command palette under "TableVault". */
namespace CommandIDs {
  export const open = 'tablevault:open';
  export const refresh = 'tablevault:refresh';
  export const toggleAll = 'tablevault:toggle-all';
}

const PALETTE_CATEGORY = 'TableVault';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A sidebar panel to see, pause, resume and stop tablevault processes.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null
  ): void => {
    const model = new ProcessModel({ refreshInterval: DEFAULT_REFRESH_INTERVAL });
    const panel = new ProcessPanel(model);
    panel.disposed.connect(() => model.dispose());
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, PANEL_ID);

    addCommands(app, panel);
    if (palette) {
      for (const command of [CommandIDs.open, CommandIDs.refresh, CommandIDs.toggleAll]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            model.refreshInterval = settings.get('refreshInterval').composite as number;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error(`${PLUGIN_ID}: settings could not be loaded, using defaults`, reason);
        });
    }
  }
};

function addCommands(app: JupyterFrontEnd, panel: ProcessPanel): void {
  const { commands, shell } = app;
  const model = panel.model;

  commands.addCommand(CommandIDs.open, {
    label: 'Show TableVault Processes',
    icon: tablevaultIcon,
    execute: () => shell.activateById(panel.id)
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh TableVault Processes',
    icon: refreshIcon,
    execute: () => {
      if (!panel.isVisible) {
        shell.activateById(panel.id);
      }
      return model.refresh();
    }
  });

  commands.addCommand(CommandIDs.toggleAll, {
    label: 'Show Ended TableVault Processes',
    isToggled: () => model.showAll,
    execute: () => {
      model.showAll = !model.showAll;
    }
  });

  let showAll = model.showAll;
  model.changed.connect(() => {
    if (model.showAll !== showAll) {
      showAll = model.showAll;
      commands.notifyCommandChanged(CommandIDs.toggleAll);
    }
  });
}

export default plugin;
