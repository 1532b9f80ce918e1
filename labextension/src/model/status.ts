/**
 * The status bar's one line, from the models listing and the last finished prediction.
 */
import type { ModelJSON } from './types';
import { formatSize, formatRate } from './format';

export interface StatusSummary {
  loaded: string[];
  generating: number;
  queued: number;
  memoryBytes: number;
}

export function summarize(models: ModelJSON[]): StatusSummary {
  const summary: StatusSummary = { loaded: [], generating: 0, queued: 0, memoryBytes: 0 };
  for (const model of models) {
    for (const instance of model.loaded_instances) {
      summary.loaded.push(instance.id);
      if (instance.status === 'generating') {
        summary.generating += 1;
        summary.queued += Math.max(0, instance.queued - 1);
      } else {
        summary.queued += instance.queued;
      }
      summary.memoryBytes += instance.memory_bytes ?? 0;
    }
  }
  return summary;
}

export function statusText(summary: StatusSummary, lastRate: number | null): string {
  if (!summary.loaded.length) {
    return 'No model loaded';
  }
  const parts = [summary.loaded.length === 1 ? summary.loaded[0] : `${summary.loaded.length} models`];
  if (summary.generating) {
    parts.push(`generating ${summary.generating}`);
  }
  if (summary.queued) {
    parts.push(`queued ${summary.queued}`);
  }
  if (lastRate !== null) {
    parts.push(formatRate(lastRate));
  }
  if (summary.memoryBytes) {
    parts.push(formatSize(summary.memoryBytes));
  }
  return parts.join(' · ');
}

/** Instances of the model a load names (its key, or one of its variants' keys). */
export function loadedInstancesOf(models: ModelJSON[], key: string): string[] {
  for (const model of models) {
    if (model.key === key || model.variants.includes(key)) {
      return model.loaded_instances.map(instance => instance.id);
    }
  }
  return [];
}
