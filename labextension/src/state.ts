/**
 * What the panel and the status bar both show, read once: the models listing (polled) and the
 * speed of the last finished prediction (from the live log's output events).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { LmApi } from './model/api';
import type { ModelJSON } from './model/types';

const POLL_MS = 2000;

export class ModelsState {
  models: ModelJSON[] = [];
  lastRate: number | null = null;
  error = '';

  constructor(readonly api: LmApi) {
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
    void this.followRates();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  async refresh(): Promise<void> {
    try {
      this.models = await this.api.models();
      this.error = '';
    } catch (error) {
      this.error = String((error as Error).message ?? error);
    }
    this._changed.emit();
  }

  dispose(): void {
    window.clearInterval(this.timer);
    this.abort.abort();
  }

  /** Each finished prediction's tokens/s; the stream is reopened if the server restarts. */
  private async followRates(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        for await (const event of this.api.logs(['model'], ['output'], this.abort.signal)) {
          const rate = event.data.stats?.tokensPerSecond;
          if (typeof rate === 'number' && rate > 0) {
            this.lastRate = rate;
            this._changed.emit();
          }
        }
      } catch {
        // disconnected: wait one poll period and reconnect
      }
      await new Promise(resolve => window.setTimeout(resolve, POLL_MS));
    }
  }

  private timer: number;
  private abort = new AbortController();
  private _changed = new Signal<this, void>(this);
}
