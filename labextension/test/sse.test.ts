import { describe, expect, it } from 'vitest';

import { SSEParser, readEvents } from '../src/model/sse';

describe('server-sent events', () => {
  it('joins events split across chunks anywhere', () => {
    const parser = new SSEParser();
    expect(parser.feed('data: {"a"')).toEqual([]);
    expect(parser.feed(': 1}\n')).toEqual([]);
    expect(parser.feed('\ndata: {"b": 2}\n\ndata: [DO')).toEqual([{ a: 1 }, { b: 2 }]);
    expect(parser.feed('NE]\n\n')).toEqual([]);
  });

  it('skips comments and reads CRLF streams', () => {
    const parser = new SSEParser();
    expect(parser.feed(': streaming logs\r\n\r\ndata: {"c": 3}\r\n\r\n: keep-alive\n\n')).toEqual([{ c: 3 }]);
  });

  it('reads a response body stream', async () => {
    const bytes = new TextEncoder().encode('data: {"x": "é"}\n\ndata: {"y": 1}\n\n');
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        // split inside the two-byte é
        controller.enqueue(bytes.slice(0, 13));
        controller.enqueue(bytes.slice(13));
        controller.close();
      }
    });
    const events = [];
    for await (const event of readEvents(body)) {
      events.push(event);
    }
    expect(events).toEqual([{ x: 'é' }, { y: 1 }]);
  });
});
