/**
 * The lm_jupyter routes the extension uses, over any fetch-like requester (JupyterLab's
 * ServerConnection in the app: it adds the token and XSRF headers). Errors carry the server's
 * own message (OpenAI error JSON), which always names the fix.
 */
import { readEvents } from './sse';
import type { DownloadJobJSON, EstimateJSON, LogEventJSON, ModelJSON, SearchResultJSON } from './types';

export type Requester = (path: string, init?: RequestInit) => Promise<Response>;

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly param: string | null = null
  ) {
    super(message);
  }
}

export interface LoadSettings {
  model: string;
  context_length?: number;
  gpu?: number;
}

export interface CompletionRequest {
  model: string;
  prompt: string;
  suffix: string;
  max_tokens: number;
  temperature?: number;
  stop?: string[];
}

export class LmApi {
  constructor(private readonly request: Requester) {}

  async models(): Promise<ModelJSON[]> {
    return (await this.json<{ models: ModelJSON[] }>('api/v1/models')).models;
  }

  estimate(settings: LoadSettings, signal?: AbortSignal): Promise<EstimateJSON> {
    return this.json('api/v1/models/estimate', { method: 'POST', body: JSON.stringify(settings), signal });
  }

  load(settings: LoadSettings): Promise<{ instance_id: string }> {
    return this.json('api/v1/models/load', { method: 'POST', body: JSON.stringify(settings) });
  }

  unload(instanceId: string): Promise<unknown> {
    return this.json('api/v1/models/unload', { method: 'POST', body: JSON.stringify({ instance_id: instanceId }) });
  }

  async search(query: string): Promise<SearchResultJSON[]> {
    const params = new URLSearchParams({ query, limit: '10' });
    return (await this.json<{ results: SearchResultJSON[] }>(`api/v1/models/search?${params}`)).results;
  }

  download(model: string, quantization?: string): Promise<DownloadJobJSON> {
    return this.json('api/v1/models/download', { method: 'POST', body: JSON.stringify({ model, quantization }) });
  }

  downloadStatus(jobId: string): Promise<DownloadJobJSON> {
    return this.json(`api/v1/models/download/status/${encodeURIComponent(jobId)}`);
  }

  /** The live log: `sources` of server, model; `filters` of input, output (model events). */
  async *logs(sources: string[], filters: string[], signal: AbortSignal): AsyncGenerator<LogEventJSON> {
    const params = new URLSearchParams({ source: sources.join(','), filter: filters.join(','), history: '50' });
    const response = await this.send(`api/v1/logs/stream?${params}`, { signal });
    for await (const event of readEvents(response.body!)) {
      yield event as LogEventJSON;
    }
  }

  /** A streamed fill-in-the-middle completion: yields the text as it grows. */
  async *complete(body: CompletionRequest, signal: AbortSignal): AsyncGenerator<string> {
    const response = await this.send('v1/completions', {
      method: 'POST',
      body: JSON.stringify({ ...body, stream: true }),
      signal
    });
    let text = '';
    for await (const event of readEvents(response.body!)) {
      const chunk = event as { choices?: { text: string }[]; error?: { message: string } };
      if (chunk.error) {
        throw new ApiError(chunk.error.message, 500);
      }
      const piece = chunk.choices?.[0]?.text ?? '';
      if (piece) {
        text += piece;
        yield text;
      }
    }
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.send(path, init)).json()) as T;
  }

  private async send(path: string, init?: RequestInit): Promise<Response> {
    const response = await this.request(path, init);
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      let param: string | null = null;
      try {
        const body = await response.json();
        message = body.error?.message ?? message;
        param = body.error?.param ?? null;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(message, response.status, param);
    }
    return response;
  }
}
