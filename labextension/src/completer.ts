/**
 * Ghost text in code cells from a local model, by fill-in-the-middle on /v1/completions.
 *
 * Each keystroke cancels the request before it: its stream is closed, which stops the
 * generation on the server within a token. The first piece of text is returned from `fetch`
 * (the first ghost text) and the rest streams through `stream`.
 */
import type {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider
} from '@jupyterlab/completer';
import { InlineCompletionTriggerKind } from '@jupyterlab/completer';

import { LmApi } from './model/api';
import { fimContext } from './model/context';

export interface CompleterSettings {
  model: string;
  debounceMs: number;
  maxTokens: number;
  prefixChars: number;
  suffixChars: number;
  temperature: number;
}

export const DEFAULT_SETTINGS: CompleterSettings = {
  model: '',
  debounceMs: 250,
  maxTokens: 64,
  prefixChars: 4000,
  suffixChars: 1000,
  temperature: 0.2
};

/** The parts of a notebook panel read here (other editors have no cells above). */
interface NotebookLike {
  content?: {
    activeCellIndex: number;
    widgets: ReadonlyArray<{ model: { type: string; sharedModel: { getSource(): string } } }>;
  };
}

function cellsAbove(widget: unknown): string[] {
  const notebook = (widget as NotebookLike).content;
  if (!notebook?.widgets) {
    return [];
  }
  return notebook.widgets
    .slice(0, notebook.activeCellIndex)
    .filter(cell => cell.model.type === 'code')
    .map(cell => cell.model.sharedModel.getSource());
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      window.clearTimeout(timer);
      resolve();
    });
  });
}

export class LocalInlineProvider implements IInlineCompletionProvider {
  readonly name = 'Local model (lm_jupyter)';
  readonly identifier = 'lm_jupyter:inline';
  // JupyterLab's own per-provider settings: fill in mid-line too (that is what FIM is for),
  // and allow a first completion time to load the model just in time.
  readonly schema = { default: { autoFillInMiddle: true, timeout: 20000 } };
  settings: CompleterSettings = { ...DEFAULT_SETTINGS };

  constructor(private readonly api: LmApi) {}

  async fetch(request: CompletionHandler.IRequest, context: IInlineCompletionContext): Promise<IInlineCompletionList> {
    this.current?.abort(); // the user typed on: the earlier request is stale
    const controller = new AbortController();
    this.current = controller;
    const settings = this.settings;
    if (!settings.model) {
      return { items: [] }; // off until a model is chosen in the settings
    }
    if (context.triggerKind === InlineCompletionTriggerKind.Automatic) {
      await sleep(settings.debounceMs, controller.signal);
    }
    if (controller.signal.aborted) {
      return { items: [] };
    }
    const { prefix, suffix } = fimContext(
      cellsAbove(context.widget),
      request.text,
      request.offset,
      settings.prefixChars,
      settings.suffixChars
    );
    const texts = this.api.complete(
      { model: settings.model, prompt: prefix, suffix, max_tokens: settings.maxTokens, temperature: settings.temperature },
      controller.signal
    );
    try {
      const first = await texts.next();
      if (first.done || controller.signal.aborted) {
        return { items: [] };
      }
      const token = `${++this.counter}`;
      this.streams.set(token, texts);
      return { items: [{ insertText: first.value, isIncomplete: true, token }] };
    } catch (error) {
      if (controller.signal.aborted) {
        return { items: [] };
      }
      return { items: [{ insertText: '', error: { message: String((error as Error).message ?? error) } }] };
    }
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const texts = this.streams.get(token);
    this.streams.delete(token);
    if (!texts) {
      return;
    }
    try {
      for await (const text of texts) {
        yield { response: { insertText: text } };
      }
    } catch {
      // cancelled by the next keystroke: the ghost text stays as far as it got
    }
  }

  private current: AbortController | null = null;
  private counter = 0;
  private streams = new Map<string, AsyncGenerator<string>>();
}
