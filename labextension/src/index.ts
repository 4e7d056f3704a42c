import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { detJupyterIcon } from './icons';
import { bestCheckpointCode, checkpointCode } from './loadcode';
import { DetSidebar } from './sidebar';
import { TrialPanel } from './trialpanel';

export { requestAPI } from './handler';
export * from './models';
export { DetSidebar } from './sidebar';
export { TrialPanel } from './trialpanel';

/** The commands this extension adds (all but open-trial are in the command palette). */
namespace CommandIDs {
  /** Insert code that loads an experiment's best checkpoint into a new cell of the notebook. */
  export const insertLoadCode = 'det-jupyter:insert-load-code';
  /** Insert code that loads one checkpoint (`experiment`, `trial`, `uuid`, `steps`) into a new cell. */
  export const insertCheckpointCode = 'det-jupyter:insert-checkpoint-code';
  /** Open a trial's detail (`id`) in the main area. */
  export const openTrial = 'det-jupyter:open-trial';
  /** Refresh the sidebar now. */
  export const refresh = 'det-jupyter:refresh';
  /** Open the sidebar. */
  export const open = 'det-jupyter:open-sidebar';
}

const PLUGIN_ID = 'det-jupyter:plugin';
const CATEGORY = 'det_jupyter';

/**
 * The det_jupyter sidebar: experiments, trials, actions and the cluster; trial panels in the main
 * area; and commands that insert checkpoint-loading code into a new notebook cell.
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
      insertCommand: CommandIDs.insertLoadCode,
      openTrialCommand: CommandIDs.openTrial
    });
    app.shell.add(sidebar, 'left', { rank: 250 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }
    const trials = new WidgetTracker<MainAreaWidget<TrialPanel>>({
      namespace: 'det-jupyter-trial'
    });
    if (restorer) {
      void restorer.restore(trials, {
        command: CommandIDs.openTrial,
        args: w => ({ id: w.content.trialId }),
        name: w => String(w.content.trialId)
      });
    }

    /** Put `code` into a new code cell below the active one (never over the user's code). */
    const insertCell = (code: string): boolean => {
      const panel = notebooks.currentWidget;
      if (!panel) {
        Notification.warning('Open a notebook first: the code goes into a new cell of it.');
        return false;
      }
      const notebook = panel.content;
      NotebookActions.insertBelow(notebook);
      const target = notebook.activeCell;
      if (!target) {
        return false;
      }
      target.model.sharedModel.setSource(code);
      app.shell.activateById(panel.id);
      return true;
    };

    app.commands.addCommand(CommandIDs.insertLoadCode, {
      label: args =>
        args.id === undefined
          ? 'Insert code to load the best checkpoint (selected experiment)'
          : `Insert code to load the best checkpoint of experiment ${args.id}`,
      caption:
        'Insert code that loads the best checkpoint into a new notebook cell, as exp_<id> / model_<id>_best',
      icon: detJupyterIcon,
      execute: args => {
        const id = args.id === undefined ? sidebar.selectedExperiment : Number(args.id);
        if (id === null || !Number.isInteger(id) || id < 1) {
          Notification.warning(
            'Insert code: there is no experiment yet (see the det_jupyter sidebar).'
          );
          return;
        }
        insertCell(bestCheckpointCode(id));
      }
    });
    app.commands.addCommand(CommandIDs.insertCheckpointCode, {
      label: args =>
        args.trial === undefined
          ? 'Insert code to load a checkpoint'
          : `Insert code to load this checkpoint of trial ${args.trial}`,
      caption: 'Insert code that loads one checkpoint into a new notebook cell',
      icon: detJupyterIcon,
      execute: args => {
        if (typeof args.uuid !== 'string') {
          Notification.warning(
            'Choose a checkpoint in a trial panel (click a trial in the sidebar).'
          );
          return;
        }
        insertCell(
          checkpointCode({
            experimentId: Number(args.experiment),
            trialId: Number(args.trial),
            uuid: args.uuid,
            steps: Number(args.steps)
          })
        );
      }
    });
    app.commands.addCommand(CommandIDs.openTrial, {
      label: args => (args.id === undefined ? 'Open a trial' : `Open trial ${args.id}`),
      caption: "A trial's curves, hyperparameters, checkpoints and live log",
      icon: detJupyterIcon,
      execute: args => {
        const id = Number(args.id);
        if (!Number.isInteger(id) || id < 1) {
          return;
        }
        const open = trials.find(w => w.content.trialId === id);
        if (open) {
          app.shell.activateById(open.id);
          return;
        }
        const content = new TrialPanel({
          trialId: id,
          commands: app.commands,
          insertCheckpointCommand: CommandIDs.insertCheckpointCode
        });
        const widget = new MainAreaWidget({ content });
        widget.id = `det-jupyter-trial-panel-${id}`;
        widget.title.label = `Trial ${id}`;
        widget.title.icon = detJupyterIcon;
        widget.title.closable = true;
        void trials.add(widget);
        app.shell.add(widget, 'main', { mode: 'split-right' });
        app.shell.activateById(widget.id);
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
      for (const command of [
        CommandIDs.open,
        CommandIDs.refresh,
        CommandIDs.insertLoadCode,
        CommandIDs.insertCheckpointCode
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
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

export default plugin;
