import { describe, expect, it } from 'vitest';

import { logLine } from '../src/model/log';

const AT = Date.UTC(2026, 0, 2, 3, 4, 5);

describe('live log lines', () => {
  it('shows server messages, and requests only when asked', () => {
    const loaded = { timestamp: AT, data: { type: 'log', level: 'info', content: "Loaded 'a'", event: 'load' } };
    expect(logLine(loaded, false)).toBe("03:04:05 Loaded 'a'");
    const request = { timestamp: AT, data: { type: 'log', content: 'GET /api/v1/models 200 1.00ms', event: 'request' } };
    expect(logLine(request, false)).toBeNull();
    expect(logLine(request, true)).toBe('03:04:05 GET /api/v1/models 200 1.00ms');
  });

  it('shows prediction input and output with the speed', () => {
    const input = { timestamp: AT, data: { type: 'llm.prediction.input', input: 'Hi', modelIdentifier: 'm' } };
    expect(logLine(input, false)).toBe('03:04:05 m ← Hi');
    const output = {
      timestamp: AT,
      data: { type: 'llm.prediction.output', output: 'Hello', modelIdentifier: 'm', stats: { tokensPerSecond: 12.345 } }
    };
    expect(logLine(output, false)).toBe('03:04:05 m → Hello (12.3 tok/s)');
  });
});
