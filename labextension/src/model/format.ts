/**
 * Numbers as the rest of lm_jupyter prints them. Memory is base-1024 GiB with two decimals,
 * exactly as `lmj load --estimate-only` (lm_jupyter/client/estimate_view.py) prints it, so
 * the panel and the terminal never disagree about the same estimate.
 */
import type { EstimateJSON, LoadedInstanceJSON } from './types';

const GIB = 1024 ** 3;

export function formatGiB(bytes: number): string {
  return `${(bytes / GIB).toFixed(2)} GiB`;
}

/** The two estimate lines of `lmj load --estimate-only`, character for character. */
export function estimateLines(estimate: EstimateJSON): string[] {
  return [
    `Estimated GPU Memory:   ${formatGiB(estimate.memory.totalVramBytes)}`,
    `Estimated Total Memory: ${formatGiB(estimate.memory.totalBytes)}`
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
    text: `${formatGiB(need)} of ${formatGiB(room)}`
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
