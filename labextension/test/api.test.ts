import { describe, expect, it } from 'vitest';

import { ApiError, LmApi } from '../src/model/api';

/** A requester answering each path from a table, recording what was sent. */
function server(routes: Record<string, () => Response>, sent: { path: string; init?: RequestInit }[] = []) {
  return new LmApi(async (path, init) => {
    sent.push({ path, init });
    const route = routes[path.split('?')[0]];
    return route ? route() : new Response('not found', { status: 404, statusText: 'Not Found' });
  });
}

function sse(...events: string[]): () => Response {
  return () => new Response(events.map(e => `data: ${e}\n\n`).join(''), { headers: { 'Content-Type': 'text/event-stream' } });
}

describe('LmApi', () => {
  it('raises the server message and the field it names', async () => {
    const api = server({
      'api/v1/models/load': () =>
        new Response(JSON.stringify({ error: { message: "Model 'x' is not downloaded.", param: 'model' } }), {
          status: 404
        })
    });
    const error = await api.load({ model: 'x' }).catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ message: "Model 'x' is not downloaded.", status: 404, param: 'model' });
  });

  it('keeps the status line when the body is not JSON', async () => {
    const error = await server({}).models().catch(e => e);
    expect(error).toMatchObject({ message: '404 Not Found', status: 404 });
  });

  it('streams a completion as growing text and sends suffix and stream', async () => {
    const sent: { path: string; init?: RequestInit }[] = [];
    const api = server(
      {
        'v1/completions': sse(
          '{"choices": [{"text": "a + "}]}',
          '{"choices": [{"text": ""}]}',
          '{"choices": [{"text": "b"}]}',
          '[DONE]'
        )
      },
      sent
    );
    const texts = [];
    const body = { model: 'm', prompt: 'return ', suffix: '\n', max_tokens: 8 };
    for await (const text of api.complete(body, new AbortController().signal)) {
      texts.push(text);
    }
    expect(texts).toEqual(['a + ', 'a + b']);
    expect(JSON.parse(String(sent[0].init?.body))).toEqual({ ...body, stream: true });
  });

  it('turns an error event mid-stream into an error', async () => {
    const api = server({ 'v1/completions': sse('{"choices": [{"text": "a"}]}', '{"error": {"message": "boom"}}') });
    const texts: string[] = [];
    const run = async () => {
      for await (const text of api.complete({ model: 'm', prompt: '', suffix: '', max_tokens: 1 }, new AbortController().signal)) {
        texts.push(text);
      }
    };
    await expect(run()).rejects.toThrow('boom');
    expect(texts).toEqual(['a']);
  });

  it('asks the log stream for the chosen sources and filters', async () => {
    const sent: { path: string; init?: RequestInit }[] = [];
    const api = server({ 'api/v1/logs/stream': sse('{"timestamp": 1, "data": {"type": "log", "content": "hi"}}') }, sent);
    const events = [];
    for await (const event of api.logs(['server', 'model'], ['output'], new AbortController().signal)) {
      events.push(event);
    }
    expect(events).toEqual([{ timestamp: 1, data: { type: 'log', content: 'hi' } }]);
    const query = new URLSearchParams(sent[0].path.split('?')[1]);
    expect([query.get('source'), query.get('filter'), query.get('history')]).toEqual(['server,model', 'output', '50']);
  });
});
