/**
 * Server-sent events, parsed incrementally: network chunks split lines and events anywhere,
 * so text is buffered until an event's blank line arrives. Comment lines (`: keep-alive`)
 * and the OpenAI `[DONE]` sentinel are dropped; every other `data:` payload is JSON.
 */
export class SSEParser {
  private buffer = '';

  /** Feed decoded text; returns the JSON payloads of the events it completed. */
  feed(text: string): unknown[] {
    this.buffer += text.replace(/\r\n?/g, '\n');
    const events: unknown[] = [];
    let end = this.buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter(line => line.startsWith('data:'))
        .map(line => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data && data !== '[DONE]') {
        events.push(JSON.parse(data));
      }
      end = this.buffer.indexOf('\n\n');
    }
    return events;
  }
}

/** Read a streamed response body event by event. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
        yield event;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
