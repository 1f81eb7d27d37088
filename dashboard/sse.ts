/** Server-sent events, parsed from a growing text buffer (the dashboard reads the stream with fetch to send its key). */
export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
}

/** The complete events in `buffer` (comments skipped) and what is left of it. */
export function takeEvents(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  let rest = buffer.replaceAll("\r\n", "\n");
  for (let end = rest.indexOf("\n\n"); end >= 0; end = rest.indexOf("\n\n")) {
    const block = rest.slice(0, end);
    rest = rest.slice(end + 2);
    const event: SseEvent = {};
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "id" || field === "event") event[field] = value;
    }
    if (data.length > 0) event.data = data.join("\n");
    if (event.id !== undefined || event.event !== undefined || event.data !== undefined) events.push(event);
  }
  return { events, rest };
}
