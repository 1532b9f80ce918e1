import { describe, expect, it } from 'vitest';

import { loadedInstancesOf, statusText, summarize } from '../src/model/status';
import type { LoadedInstanceJSON, ModelJSON } from '../src/model/types';
import { loadedInstance } from './fixtures';

const GIB = 1024 ** 3;

function model(key: string, variants: string[], instances: Partial<LoadedInstanceJSON>[]): ModelJSON {
  return {
    type: 'llm',
    publisher: 'p',
    key,
    display_name: key,
    quantization: { name: 'Q4_K_M', bits_per_weight: 4 },
    size_bytes: GIB,
    params_string: '1B',
    max_context_length: 4096,
    variants,
    selected_variant: variants[0] ?? key,
    variant_details: [],
    loaded_instances: instances.map(extra => loadedInstance({ id: key, variant: key, ...extra }))
  };
}

describe('status bar', () => {
  it('says when nothing is loaded', () => {
    expect(statusText(summarize([model('a/b', [], [])]), null)).toBe('No model loaded');
  });

  it('names one model, its queue, the last speed and the memory', () => {
    const models = [model('a/b', [], [{ id: 'a/b', status: 'generating', queued: 3, memory_bytes: 1.5 * GIB }])];
    const summary = summarize(models);
    expect(summary).toEqual({ loaded: ['a/b'], generating: 1, queued: 2, memoryBytes: 1.5 * GIB });
    expect(statusText(summary, 14.25)).toBe('a/b · generating 1 · queued 2 · 14.3 tok/s · 1.50 GiB');
  });

  it('counts several models', () => {
    const models = [
      model('a/b', [], [{ id: 'a/b', memory_bytes: GIB }, { id: 'a/b:2', memory_bytes: GIB }]),
      model('c/d', [], [{ id: 'c/d', status: 'loading' }])
    ];
    expect(statusText(summarize(models), null)).toBe('3 models · 2.00 GiB');
  });
});

describe('a second load of a loaded model', () => {
  it('finds the instances of a model by key or variant key', () => {
    const models = [model('a/b', ['a/b@q4_k_m', 'a/b@q8_0'], [{ id: 'a/b' }]), model('c/d', [], [])];
    expect(loadedInstancesOf(models, 'a/b')).toEqual(['a/b']);
    expect(loadedInstancesOf(models, 'a/b@q8_0')).toEqual(['a/b']);
    expect(loadedInstancesOf(models, 'c/d')).toEqual([]);
    expect(loadedInstancesOf(models, 'e/f')).toEqual([]);
  });
});
