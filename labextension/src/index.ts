/**
 * lm_jupyter's JupyterLab extension: the Local Models side panel, a status-bar item, inline
 * code completion from a local model, and the page's maths typesetter lent to the live widgets.
 * Everything goes through the same public HTTP routes any other client uses (lm_jupyter/server/).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { URLExt } from '@jupyterlab/coreutils';
import { ILatexTypesetter } from '@jupyterlab/rendermime';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { DEFAULT_SETTINGS, LocalInlineProvider } from './completer';
import { listenForTypeset } from './maths';
import { LmApi } from './model/api';
import { LocalModelsPanel } from './panel';
import { ModelsState } from './state';
import { ModelsStatus } from './statusbar';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M4 4h16v4H4zm0 6h16v4H4zm0 6h16v4H4zm2-11v2h2V5zm0 6v2h2v-2zm0 6v2h2v-2z"/></svg>';
const icon = new LabIcon({ name: 'lm_jupyter:models', svgstr: ICON_SVG });
const OPEN_COMMAND = 'lm_jupyter:open-panel';

function makeApi(): { api: LmApi; baseUrl: string } {
  const settings = ServerConnection.makeSettings();
  const api = new LmApi((path, init) =>
    ServerConnection.makeRequest(URLExt.join(settings.baseUrl, path), init ?? {}, settings)
  );
  const baseUrl = new URL(settings.baseUrl, window.location.href).href;
  return { api, baseUrl };
}

const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lm_jupyter:plugin',
  description: 'The Local Models side panel and status-bar item.',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null) => {
    const { api, baseUrl } = makeApi();
    const state = new ModelsState(api);
    const panel = new LocalModelsPanel(state, api, baseUrl);
    panel.title.icon = icon;
    app.shell.add(panel, 'left', { rank: 900 }); // JupyterLab's and Notebook 7's left area
    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Open Local Models',
      execute: () => app.shell.activateById(panel.id)
    });
    if (statusBar) {
      statusBar.registerStatusItem('lm_jupyter:status', {
        item: new ModelsStatus(state, () => void app.commands.execute(OPEN_COMMAND)),
        align: 'left',
        rank: 100
      });
    }
  }
};

const completerPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lm_jupyter:completer',
  description: 'Inline code completion (ghost text) from a local model by fill-in-the-middle.',
  autoStart: true,
  requires: [ICompletionProviderManager, ISettingRegistry],
  activate: async (app: JupyterFrontEnd, completions: ICompletionProviderManager, registry: ISettingRegistry) => {
    const provider = new LocalInlineProvider(makeApi().api);
    completions.registerInlineProvider(provider);
    const settings = await registry.load(completerPlugin.id);
    const apply = () => {
      provider.settings = { ...DEFAULT_SETTINGS, ...(settings.composite as object) };
    };
    settings.changed.connect(apply);
    apply();
  }
};

const mathsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lm_jupyter:maths',
  description: "Typesets maths in lm_jupyter's live widgets with the page's MathJax (see maths.ts).",
  autoStart: true,
  optional: [ILatexTypesetter],
  activate: (app: JupyterFrontEnd, typesetter: ILatexTypesetter | null) => {
    if (typesetter) {
      listenForTypeset(document, typesetter);
    }
  }
};

export default [panelPlugin, completerPlugin, mathsPlugin];
