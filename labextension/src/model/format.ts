/**
 * Numbers as the rest of lm_jupyter prints them. Sizes and memory are base-1024 units with two
 * decimals, exactly as `format_size` (lm_jupyter/client/tables.py) writes them for `lmj`, `%lms`
 * and the notebook widgets, so the panel, the status bar and the terminal never disagree about
 * the same quantity.
 */
import type { EstimateJSON, LoadedInstanceJSON } from './types';

export function formatSize(bytes: number): string {
  let value = bytes;
  for (const unit of ['B', 'KiB', 'MiB', 'GiB']) {
    if (value < 1024) {
      return unit === 'B' ? `${Math.trunc(value)} B` : `${value.toFixed(2)} ${unit}`;
    }
    value /= 1024;
  }
  return `${value.toFixed(2)} TiB`;
}

/** The two estimate lines of `lmj load --estimate-only`, character for character. */
export function estimateLines(estimate: EstimateJSON): string[] {
  return [
    `Estimated GPU Memory:   ${formatSize(estimate.memory.totalVramBytes)}`,
    `Estimated Total Memory: ${formatSize(estimate.memory.totalBytes)}`
  ];
}

export function verdict(estimate: EstimateJSON): string {
  const will = estimate.passesGuardrails ? 'may be loaded' : 'will fail to load';
  return `Estimate: This model ${will} based on your resource guardrails settings.`;
}

/** A bar's fill: the share of the room a load needs, 0..1 (over 1 is clamped, flagged by `over`). */
export interface Bar {
  label: string;
  fraction: number;
  over: boolean;
  text: string;
}

/** The %lms ModelManager widget's two bars: GPU memory against the GPU's room, and the whole
 * load against RAM and GPU room together (what the guardrail weighs). */
export function estimateBars(estimate: EstimateJSON): Bar[] {
  const { totalBytes, totalVramBytes } = estimate.memory;
  const { ram_bytes, vram_bytes } = estimate.available;
  return [bar('GPU', totalVramBytes, vram_bytes), bar('Total', totalBytes, ram_bytes + vram_bytes)];
}

function bar(label: string, need: number, room: number): Bar {
  const ratio = room > 0 ? need / room : need > 0 ? Infinity : 0;
  return {
    label,
    fraction: Math.min(1, ratio),
    over: ratio > 1,
    text: `${formatSize(need)} of ${formatSize(room)}`
  };
}

/** `idle`, `generating`, `generating, queued 2`, `loading` (queued counts the running one, as `ps`). */
export function instanceStatus(instance: LoadedInstanceJSON): string {
  const waiting = instance.status === 'generating' ? instance.queued - 1 : instance.queued;
  return waiting > 0 ? `${instance.status}, queued ${waiting}` : instance.status;
}

/** `TTL 59m 10s` left, or `no TTL`. */
export function formatTTL(instance: LoadedInstanceJSON): string {
  const left = instance.ttl_remaining_seconds;
  if (left === null || left === undefined) {
    return 'no TTL';
  }
  const total = Math.max(0, Math.round(left));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const parts = hours ? [`${hours}h`, `${minutes}m`] : minutes ? [`${minutes}m`, `${seconds}s`] : [`${seconds}s`];
  return `TTL ${parts.join(' ')}`;
}

export function formatRate(tokensPerSecond: number | null): string {
  return tokensPerSecond === null ? '' : `${tokensPerSecond.toFixed(1)} tok/s`;
}
