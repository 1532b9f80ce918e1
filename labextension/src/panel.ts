/**
 * The "Local Models" side panel: loaded instances, downloaded models with a load form and its
 * live memory estimate, Hugging Face search and downloads, the live log, and how other apps
 * reach the server. Plain DOM in one Lumino widget; each section redraws only its own part,
 * so a slider being dragged is never rebuilt under the user's hand.
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, LmApi } from './model/api';
import type { LoadSettings } from './model/api';
import { estimateBars, estimateLines, formatSize, formatTTL, instanceStatus, verdict } from './model/format';
import { logLine } from './model/log';
import { loadedInstancesOf } from './model/status';
import type { DownloadJobJSON, EstimateJSON, LogEventJSON, ModelJSON } from './model/types';
import { ModelsState } from './state';

type Child = Node | string;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function button(label: string, className: string, onClick: () => void): HTMLButtonElement {
  const node = el('button', { class: `jp-Button lmx-button ${className}`, type: 'button' }, label);
  node.addEventListener('click', onClick);
  return node;
}

function message(error: unknown): string {
  return error instanceof ApiError ? error.message : String((error as Error)?.message ?? error);
}

export class LocalModelsPanel extends Widget {
  constructor(
    private readonly state: ModelsState,
    private readonly api: LmApi,
    private readonly baseUrl: string
  ) {
    super();
    this.id = 'lmx-panel';
    this.addClass('lmx-panel');
    this.title.caption = 'Local Models';
    this.node.append(
      el('h2', { class: 'lmx-title' }, 'Local Models'),
      this.section('Loaded', this.loadedList),
      this.section('Downloaded', this.modelList),
      this.section('Download from Hugging Face', this.hubSection()),
      this.section('Live log', this.logSection()),
      this.section('Use from other apps', this.serverSection())
    );
    state.changed.connect(this.render, this);
    this.render();
  }

  dispose(): void {
    this.logAbort?.abort();
    super.dispose();
  }

  private section(title: string, body: HTMLElement): HTMLElement {
    return el('section', { class: 'lmx-section' }, el('h3', {}, title), body);
  }

  private render(): void {
    this.renderLoaded();
    const keys = this.state.models.map(m => `${m.key}:${m.variants.join(',')}`).join('|');
    if (keys !== this.shownKeys) {
      this.shownKeys = keys;
      this.renderModels();
    }
  }

  // -- loaded instances ---------------------------------------------------------------

  private renderLoaded(): void {
    const rows: HTMLElement[] = [];
    for (const model of this.state.models) {
      for (const instance of model.loaded_instances) {
        const memory = instance.memory_bytes ? formatSize(instance.memory_bytes) : '';
        rows.push(
          el(
            'div',
            { class: 'lmx-instance', 'data-id': instance.id },
            el('span', { class: 'lmx-name' }, instance.id),
            el('span', { class: `lmx-status lmx-status-${instance.status}` }, instanceStatus(instance)),
            el('span', { class: 'lmx-ttl' }, formatTTL(instance)),
            el('span', { class: 'lmx-memory' }, memory),
            button('Unload', 'lmx-unload', () => void this.unload(instance.id))
          )
        );
      }
    }
    if (this.state.error) {
      rows.push(el('div', { class: 'lmx-error' }, this.state.error));
    } else if (!rows.length) {
      rows.push(el('div', { class: 'lmx-empty' }, 'No model is loaded.'));
    }
    this.loadedList.replaceChildren(...rows);
  }

  private async unload(id: string): Promise<void> {
    try {
      await this.api.unload(id);
    } catch (error) {
      void showDialog({ title: 'Unload failed', body: message(error), buttons: [Dialog.okButton()] });
    }
    await this.state.refresh();
  }

  // -- downloaded models and the load form ----------------------------------------------

  private renderModels(): void {
    const rows = this.state.models.map(model => this.modelRow(model));
    if (!rows.length) {
      rows.push(el('div', { class: 'lmx-empty' }, 'No models downloaded yet: search Hugging Face below.'));
    }
    this.modelList.replaceChildren(...rows);
  }

  private modelRow(model: ModelJSON): HTMLElement {
    const badges = el('span', { class: 'lmx-badges' });
    const caps = model.capabilities;
    const names = [
      model.type === 'embedding' ? 'embedding' : '',
      caps?.trained_for_tool_use ? 'tools' : '',
      caps?.reasoning ? 'reasoning' : '',
      caps?.fill_in_middle ? 'fill-in-middle' : ''
    ].filter(Boolean);
    badges.append(...names.map(name => el('span', { class: 'lmx-badge' }, name)));
    const details = [model.params_string, model.quantization.name, formatSize(model.size_bytes)].filter(Boolean);
    const form = el('div', { class: 'lmx-load-form' });
    form.hidden = true;
    const row = el(
      'div',
      { class: 'lmx-model', 'data-key': model.key },
      el('div', { class: 'lmx-model-head' }, el('span', { class: 'lmx-name' }, model.display_name), badges),
      el('div', { class: 'lmx-model-key' }, `${model.key} · ${details.join(' · ')}`),
      button('Load…', 'lmx-open-load', () => {
        form.hidden = !form.hidden;
        if (!form.hidden && !form.childElementCount) {
          this.fillLoadForm(form, model);
        }
      }),
      form
    );
    return row;
  }

  private fillLoadForm(form: HTMLElement, model: ModelJSON): void {
    const variant = el('select', { class: 'lmx-variant' });
    for (const v of model.variant_details) {
      const option = el('option', { value: v.key }, `${v.quantization} · ${formatSize(v.size_bytes)}`);
      option.selected = v.key === model.selected_variant;
      variant.append(option);
    }
    const max = Math.max(512, model.max_context_length);
    const context = el('input', {
      class: 'lmx-context',
      type: 'range',
      min: '512',
      max: String(max),
      step: '512',
      value: String(Math.min(4096, max))
    });
    const gpu = el('input', { class: 'lmx-gpu', type: 'range', min: '0', max: '1', step: '0.05', value: '0' });
    const contextLabel = el('span', { class: 'lmx-value' });
    const gpuLabel = el('span', { class: 'lmx-value' });
    // Hidden until an estimate says this machine has a GPU that llama.cpp can use.
    const gpuControl = el('label', { class: 'lmx-gpu-control', style: 'display: none' }, 'GPU offload ', gpu, gpuLabel);
    const estimate = el('div', { class: 'lmx-estimate' });
    // The server chooses the offload (all layers where they fit) until the user moves the slider.
    let gpuChosen = false;
    const settings = () => ({
      model: model.variant_details.length > 1 ? variant.value : model.key,
      context_length: Number(context.value),
      ...(gpuChosen ? { gpu: Number(gpu.value) } : {})
    });
    let pending: AbortController | null = null;
    let timer = 0;
    const refresh = () => {
      contextLabel.textContent = `${Number(context.value).toLocaleString('en-US')} tokens`;
      window.clearTimeout(timer);
      timer = window.setTimeout(async () => {
        pending?.abort();
        pending = new AbortController();
        try {
          const result = await this.api.estimate(settings(), pending.signal);
          gpuControl.style.display = result.gpu_usable ? '' : 'none';
          if (!gpuChosen) {
            gpu.value = String(result.gpu_offload);
          }
          const percent = `${Math.round(Number(gpu.value) * 100)}%`;
          gpuLabel.textContent = gpuChosen ? percent : `${percent} (auto)`;
          this.showEstimate(estimate, result);
        } catch (error) {
          if (!pending.signal.aborted) {
            estimate.replaceChildren(el('div', { class: 'lmx-error' }, message(error)));
          }
        }
      }, 150);
    };
    gpu.addEventListener('input', () => {
      gpuChosen = true;
    });
    for (const input of [variant, context, gpu]) {
      input.addEventListener('input', refresh);
    }
    const status = el('div', { class: 'lmx-load-status' });
    const load = button('Load', 'lmx-load', () => void this.load(model, settings(), status));
    form.append(
      el('label', {}, 'Variant ', variant),
      el('label', {}, 'Context length ', context, contextLabel),
      gpuControl,
      estimate,
      load,
      status
    );
    refresh();
  }

  private showEstimate(node: HTMLElement, estimate: EstimateJSON): void {
    const bars = estimateBars(estimate).map(bar =>
      el(
        'div',
        { class: `lmx-bar${bar.over ? ' lmx-bar-over' : ''}`, 'data-kind': bar.label },
        el('span', { class: 'lmx-bar-label' }, bar.label),
        el(
          'span',
          { class: 'lmx-bar-track' },
          el('span', { class: 'lmx-bar-fill', style: `width: ${(bar.fraction * 100).toFixed(1)}%` })
        ),
        el('span', { class: 'lmx-bar-text' }, bar.text)
      )
    );
    const lines = estimateLines(estimate).map(line => el('div', { class: 'lmx-estimate-line' }, line));
    const extra = [estimate.message, estimate.memory.confidence === 'low' ? 'Confidence: LOW' : '']
      .filter(Boolean)
      .map(text => el('div', { class: 'lmx-note' }, text!));
    node.replaceChildren(
      ...bars,
      ...lines,
      ...extra,
      el('div', { class: estimate.passesGuardrails ? 'lmx-verdict' : 'lmx-verdict lmx-error' }, verdict(estimate))
    );
  }

  private async load(
    model: ModelJSON,
    settings: LoadSettings,
    status: HTMLElement
  ): Promise<void> {
    const loaded = loadedInstancesOf(this.state.models, settings.model);
    if (loaded.length) {
      const answer = await showDialog({
        title: 'Load another instance?',
        body: `${model.display_name} is already loaded (${loaded.join(', ')}). A second instance takes as much memory again.`,
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Load another' })]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    status.textContent = `Loading ${settings.model}…`;
    try {
      const result = await this.api.load(settings);
      status.textContent = `Loaded as ${result.instance_id}.`;
    } catch (error) {
      status.textContent = message(error);
      status.classList.add('lmx-error');
    }
    await this.state.refresh();
  }

  // -- Hugging Face search and downloads ------------------------------------------------

  private hubSection(): HTMLElement {
    const query = el('input', { class: 'lmx-search', type: 'search', placeholder: 'e.g. qwen2.5 coder gguf' });
    const results = el('div', { class: 'lmx-results' });
    const search = async () => {
      results.replaceChildren(el('div', { class: 'lmx-empty' }, 'Searching…'));
      try {
        const found = await this.api.search(query.value.trim());
        results.replaceChildren(
          ...found.map(result => {
            const variant = el('select', { class: 'lmx-quant' });
            for (const v of result.variants) {
              const size = typeof v.size_bytes === 'number' ? ` · ${formatSize(v.size_bytes)}` : '';
              variant.append(el('option', { value: v.quantization }, `${v.quantization}${size}`));
            }
            return el(
              'div',
              { class: 'lmx-result', 'data-repo': result.repo },
              el('span', { class: 'lmx-name' }, result.repo),
              variant,
              button('Download', 'lmx-download', () => void this.download(result.repo, variant.value))
            );
          })
        );
        if (!found.length) {
          results.replaceChildren(el('div', { class: 'lmx-empty' }, 'Nothing found.'));
        }
      } catch (error) {
        results.replaceChildren(el('div', { class: 'lmx-error' }, message(error)));
      }
    };
    query.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void search();
      }
    });
    return el(
      'div',
      {},
      el('div', { class: 'lmx-row' }, query, button('Search', 'lmx-search-button', () => void search())),
      results,
      this.jobs
    );
  }

  private async download(repo: string, quantization: string): Promise<void> {
    const row = el(
      'div',
      { class: 'lmx-job', 'data-repo': repo, 'data-status': 'starting' },
      el('span', { class: 'lmx-name' }, `${repo} ${quantization}`)
    );
    const bar = el('progress', { class: 'lmx-progress', max: '1', value: '0' });
    const text = el('span', { class: 'lmx-job-status' }, 'starting…');
    row.append(bar, text);
    this.jobs.prepend(row);
    try {
      let job: DownloadJobJSON = await this.api.download(repo, quantization);
      while (job.status === 'downloading' && job.job_id) {
        row.dataset.status = job.status;
        const total = job.total_size_bytes ?? 0;
        const done = job.downloaded_bytes ?? 0;
        bar.value = total ? done / total : 0;
        text.textContent = `${formatSize(done)} of ${formatSize(total)}`;
        await new Promise(resolve => window.setTimeout(resolve, 1000));
        job = await this.api.downloadStatus(job.job_id);
      }
      bar.value = job.status === 'completed' || job.status === 'already_downloaded' ? 1 : bar.value;
      row.dataset.status = job.status;
      text.textContent = job.error ? `${job.status}: ${job.error}` : job.status.replace('_', ' ');
    } catch (error) {
      row.dataset.status = 'failed';
      text.textContent = message(error);
      text.classList.add('lmx-error');
    }
    await this.state.refresh();
  }

  // -- the live log ---------------------------------------------------------------------

  private logSection(): HTMLElement {
    const switches = el('div', { class: 'lmx-row lmx-log-switches' });
    const choices: [string, string, boolean][] = [
      ['source', 'server', true],
      ['source', 'model', true],
      ['filter', 'input', true],
      ['filter', 'output', true],
      ['show', 'requests', false]
    ];
    for (const [kind, name, checked] of choices) {
      const box = el('input', { type: 'checkbox', 'data-kind': kind, value: name });
      box.checked = checked;
      box.addEventListener('change', () => this.followLog(switches));
      switches.append(el('label', {}, box, ` ${name}`));
    }
    this.followLog(switches);
    return el('div', {}, switches, this.logPane);
  }

  private followLog(switches: HTMLElement): void {
    this.logAbort?.abort();
    const abort = new AbortController();
    this.logAbort = abort;
    const picked = (kind: string) =>
      Array.from(switches.querySelectorAll<HTMLInputElement>(`input[data-kind="${kind}"]`))
        .filter(box => box.checked)
        .map(box => box.value);
    const sources = picked('source');
    const showRequests = picked('show').length > 0;
    this.logPane.replaceChildren();
    if (!sources.length) {
      return;
    }
    const follow = async () => {
      try {
        for await (const event of this.api.logs(sources, picked('filter'), abort.signal)) {
          this.appendLog(event, showRequests);
        }
      } catch (error) {
        if (!abort.signal.aborted) {
          this.logPane.append(el('div', { class: 'lmx-error' }, `log stream ended: ${message(error)}`));
        }
      }
    };
    void follow();
  }

  private appendLog(event: LogEventJSON, showRequests: boolean): void {
    const text = logLine(event, showRequests);
    if (text === null) {
      return;
    }
    const line = el('div', { class: `lmx-log-line lmx-log-${event.data.level ?? 'info'}` }, text);
    this.logPane.append(line);
    while (this.logPane.childElementCount > 500) {
      this.logPane.firstElementChild!.remove();
    }
    this.logPane.scrollTop = this.logPane.scrollHeight;
  }

  // -- how other apps connect -------------------------------------------------------------

  private serverSection(): HTMLElement {
    const url = `${this.baseUrl.replace(/\/$/, '')}/v1`;
    return el(
      'div',
      {},
      el('div', {}, 'OpenAI-compatible base URL:'),
      el(
        'div',
        { class: 'lmx-row' },
        el('code', { class: 'lmx-base-url' }, url),
        button('Copy', 'lmx-copy', () => Clipboard.copyToSystem(url))
      ),
      el(
        'p',
        { class: 'lmx-help' },
        'Other apps need an API key. Make a token that can use models but not your notebooks or files: run ',
        el('code', {}, 'lmj token create my-app'),
        ' in a terminal (or ',
        el('code', {}, '%lms token create my-app'),
        ' in a notebook) and give it as the api_key; revoke it with ',
        el('code', {}, 'lmj token revoke my-app'),
        '.'
      )
    );
  }

  private loadedList = el('div', { class: 'lmx-loaded' });
  private modelList = el('div', { class: 'lmx-models' });
  private jobs = el('div', { class: 'lmx-jobs' });
  private logPane = el('div', { class: 'lmx-log' });
  private logAbort: AbortController | null = null;
  private shownKeys = '';
}
