import type { LoadedInstanceJSON } from '../src/model/types';

/** A loaded instance as /api/v1/models lists it: idle, no TTL, unless `extra` says otherwise. */
export function loadedInstance(extra: Partial<LoadedInstanceJSON>): LoadedInstanceJSON {
  return {
    id: 'a',
    variant: 'a',
    config: { context_length: 4096, parallel: 4, flash_attention: false, gpu_offload: 0 },
    status: 'idle',
    queued: 0,
    loaded_by: 'explicit',
    ttl_seconds: null,
    ttl_remaining_seconds: null,
    memory_bytes: null,
    ...extra
  };
}
