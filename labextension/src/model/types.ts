/** Bodies of the lm_jupyter routes the extension reads (see lm_jupyter/api/models.py). */

export interface LoadedInstanceJSON {
  id: string;
  variant: string;
  config: {
    context_length: number;
    parallel: number;
    flash_attention: boolean;
    gpu_offload: number;
  };
  status: string; // idle | generating | loading
  queued: number; // requests on the instance, the running one included
  loaded_by: 'jit' | 'explicit';
  ttl_seconds: number | null;
  ttl_remaining_seconds: number | null;
  memory_bytes: number | null;
}

export interface VariantJSON {
  key: string;
  quantization: string;
  size_bytes: number;
  path: string;
}

export interface ModelJSON {
  type: 'llm' | 'embedding';
  publisher: string;
  key: string;
  display_name: string;
  quantization: { name: string; bits_per_weight: number | null };
  size_bytes: number;
  params_string: string | null;
  loaded_instances: LoadedInstanceJSON[];
  max_context_length: number;
  architecture?: string;
  variants: string[];
  selected_variant: string;
  variant_details: VariantJSON[];
  capabilities?: {
    vision: boolean;
    trained_for_tool_use: boolean;
    fill_in_middle?: boolean;
    reasoning?: unknown;
  };
}

/** ``POST /api/v1/models/estimate`` (lmj load --estimate-only reads the same body). */
export interface EstimateJSON {
  model: string;
  context_length: number;
  gpu_offload: number;
  gpu_usable: boolean;
  memory: { totalBytes: number; totalVramBytes: number; confidence?: string };
  passesGuardrails: boolean;
  guardrails: string;
  available: { ram_bytes: number; vram_bytes: number };
  message?: string;
}

export interface SearchVariantJSON {
  quantization: string;
  size_bytes?: number;
  [key: string]: unknown;
}

export interface SearchResultJSON {
  repo: string;
  format: string;
  downloads: number | null;
  likes: number | null;
  variants: SearchVariantJSON[];
}

export interface DownloadJobJSON {
  job_id?: string;
  status: string; // downloading | paused | completed | failed | already_downloaded
  total_size_bytes?: number;
  downloaded_bytes?: number;
  error?: string;
  [key: string]: unknown;
}

/** One event of ``/api/v1/logs/stream``. */
export interface LogEventJSON {
  timestamp: number;
  data: {
    type: string;
    content?: string;
    level?: string;
    event?: string;
    input?: string;
    output?: string;
    modelIdentifier?: string;
    stats?: { tokensPerSecond?: number; [key: string]: unknown };
    [key: string]: unknown;
  };
}
