/**
 * One line of the live log pane per event of /api/v1/logs/stream. Every HTTP request is a
 * server event too, the panel's own polling included, so request lines are shown only when
 * asked for; load, unload and startup messages always are.
 */
import type { LogEventJSON } from './types';

export function logLine(event: LogEventJSON, showRequests: boolean): string | null {
  const data = event.data;
  if (data.event === 'request' && !showRequests) {
    return null;
  }
  const time = new Date(event.timestamp).toISOString().slice(11, 19);
  if (data.type === 'llm.prediction.input') {
    return `${time} ${data.modelIdentifier} ← ${data.input}`;
  }
  if (data.type === 'llm.prediction.output') {
    const rate = data.stats?.tokensPerSecond;
    return `${time} ${data.modelIdentifier} → ${data.output}${rate ? ` (${rate.toFixed(1)} tok/s)` : ''}`;
  }
  return `${time} ${data.content ?? ''}`;
}
