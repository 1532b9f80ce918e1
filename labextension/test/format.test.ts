import { describe, expect, it } from 'vitest';

import { estimateBars, estimateLines, formatSize, formatTTL, instanceStatus, verdict } from '../src/model/format';
import type { EstimateJSON } from '../src/model/types';
import { loadedInstance } from './fixtures';

const GIB = 1024 ** 3;

function estimate(total: number, vram: number, ram: number, vramRoom: number, passes = true): EstimateJSON {
  return {
    model: 'm',
    context_length: 4096,
    gpu_offload: 0,
    gpu_usable: vram > 0,
    memory: { totalBytes: total, totalVramBytes: vram },
    passesGuardrails: passes,
    guardrails: 'relaxed',
    available: { ram_bytes: ram, vram_bytes: vramRoom }
  };
}

describe('memory as lmj load --estimate-only prints it', () => {
  it('is format_size: base-1024 units with two decimals', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(1023)).toBe('1023 B');
    expect(formatSize(1.5 * GIB)).toBe('1.50 GiB');
    expect(formatSize(1_000_000_000)).toBe('953.67 MiB');
    expect(formatSize(73_150_464)).toBe('69.76 MiB');
    expect(formatSize(2 * 1024 * GIB)).toBe('2.00 TiB');
  });

  it('prints the two estimate lines with their padding and the verdict', () => {
    expect(estimateLines(estimate(2 * GIB, 0, 8 * GIB, 0))).toEqual([
      'Estimated GPU Memory:   0 B',
      'Estimated Total Memory: 2.00 GiB'
    ]);
    expect(verdict(estimate(1, 0, 1, 0, false))).toBe(
      'Estimate: This model will fail to load based on your resource guardrails settings.'
    );
  });
});

describe('estimate bars', () => {
  it('weighs the GPU part against the GPU and the whole against RAM and GPU together', () => {
    const [gpu, total] = estimateBars(estimate(6 * GIB, 4 * GIB, 8 * GIB, 2 * GIB));
    expect(gpu).toMatchObject({ label: 'GPU', fraction: 1, over: true, text: '4.00 GiB of 2.00 GiB' });
    expect(total).toMatchObject({ label: 'Total', fraction: 0.6, over: false, text: '6.00 GiB of 10.00 GiB' });
  });

  it('shows an empty GPU bar on a machine without a GPU', () => {
    const [gpu, total] = estimateBars(estimate(2 * GIB, 0, 8 * GIB, 0));
    expect(gpu).toMatchObject({ fraction: 0, over: false, text: '0 B of 0 B' });
    expect(total).toMatchObject({ fraction: 0.25, over: false });
  });

  it('treats no room at all as over', () => {
    expect(estimateBars(estimate(GIB, 0, 0, 0))[1]).toMatchObject({ fraction: 1, over: true });
  });
});

describe('instances', () => {
  it('counts the queue as ps does (the running request included)', () => {
    expect(instanceStatus(loadedInstance({}))).toBe('idle');
    expect(instanceStatus(loadedInstance({ status: 'generating', queued: 1 }))).toBe('generating');
    expect(instanceStatus(loadedInstance({ status: 'generating', queued: 3 }))).toBe('generating, queued 2');
    expect(instanceStatus(loadedInstance({ status: 'loading' }))).toBe('loading');
  });

  it('shows the TTL left', () => {
    expect(formatTTL(loadedInstance({}))).toBe('no TTL');
    expect(formatTTL(loadedInstance({ ttl_remaining_seconds: 42.4 }))).toBe('TTL 42s');
    expect(formatTTL(loadedInstance({ ttl_remaining_seconds: 3550 }))).toBe('TTL 59m 10s');
    expect(formatTTL(loadedInstance({ ttl_remaining_seconds: 7260 }))).toBe('TTL 2h 1m');
  });
});
