/** The status-bar item: loaded models, generating/queued, last tokens/s, memory; click opens the panel. */
import { Widget } from '@lumino/widgets';

import { statusText, summarize } from './model/status';
import { ModelsState } from './state';

export class ModelsStatus extends Widget {
  constructor(
    private readonly state: ModelsState,
    onClick: () => void
  ) {
    super();
    this.id = 'lmx-statusbar';
    this.addClass('lmx-statusbar');
    this.node.title = 'Local models (lm_jupyter): click to open the Local Models panel';
    this.node.addEventListener('click', onClick);
    state.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    this.node.textContent = this.state.error
      ? 'Local models: server unreachable'
      : statusText(summarize(this.state.models), this.state.lastRate);
  }
}
