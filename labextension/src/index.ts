import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { detJupyterIcon } from './icons';
import { DetSidebar } from './sidebar';

export { requestAPI } from './handler';
export * from './models';
export { DetSidebar } from './sidebar';

/** The commands this extension adds. */
namespace CommandIDs {
  /** Insert code that loads an experiment's best checkpoint into the active notebook. */
  export const insertLoadCode = 'det-jupyter:insert-load-code';
  /** Refresh the sidebar now. */
  export const refresh = 'det-jupyter:refresh';
  /** Open the sidebar. */
  export const open = 'det-jupyter:open-sidebar';
}

const PLUGIN_ID = 'det-jupyter:plugin';

/**
 * The det_jupyter sidebar: experiments, trials, actions and the cluster, plus the command that
 * inserts `det_jupyter.get_experiment(ID).best_checkpoint().load()` into a notebook.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Determined-style experiments on Dask: live sidebar and notebook helpers.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ): void => {
    const sidebar = new DetSidebar({
      commands: app.commands,
      insertCommand: CommandIDs.insertLoadCode
    });
    app.shell.add(sidebar, 'left', { rank: 250 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }

    app.commands.addCommand(CommandIDs.insertLoadCode, {
      label: args =>
        args.id === undefined
          ? 'Insert code to load the best checkpoint'
          : `Insert code to load the best checkpoint of experiment ${args.id}`,
      caption: 'Insert code to load the best checkpoint into the active notebook',
      icon: detJupyterIcon,
      execute: args => {
        const id = Number(args.id);
        if (!Number.isInteger(id) || id < 1) {
          Notification.warning('Insert code: choose an experiment in the det_jupyter sidebar.');
          return;
        }
        const panel = notebooks.currentWidget;
        if (!panel) {
          Notification.warning('Open a notebook first: the code is inserted into its active cell.');
          return;
        }
        const notebook = panel.content;
        const code = Private.loadCode(id);
        const cell = notebook.activeCell;
        if (
          !cell ||
          cell.model.type !== 'code' ||
          cell.model.sharedModel.getSource().trim() !== ''
        ) {
          NotebookActions.insertBelow(notebook);
        }
        const target = notebook.activeCell;
        if (target) {
          target.model.sharedModel.setSource(code);
          app.shell.activateById(panel.id);
        }
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh the experiments sidebar',
      execute: () => sidebar.refresh()
    });
    app.commands.addCommand(CommandIDs.open, {
      label: 'Show det_jupyter experiments',
      icon: detJupyterIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'det_jupyter' });
      palette.addItem({ command: CommandIDs.refresh, category: 'det_jupyter' });
    }

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        sidebar.refreshInterval = settings.get('refreshInterval').composite as number;
        sidebar.clusterRefreshInterval = settings.get('clusterRefreshInterval').composite as number;
        sidebar.pageSize = settings.get('pageSize').composite as number;
      };
      // no await in activate: settings arrive when they arrive, the defaults run until then
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('det-jupyter: cannot load settings', reason));
    }
  }
};

namespace Private {
  /** The snippet the insert-code command writes. */
  export function loadCode(id: number): string {
    return (
      'import det_jupyter\n\n' +
      `exp = det_jupyter.get_experiment(${id})\n` +
      'model = exp.best_checkpoint().load()'
    );
  }
}

export default plugin;
