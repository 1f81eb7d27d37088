/** One dispatched server-sent event. */
export interface SseEvent {
  /** The `event:` name; "message" when the event had none. */
  event: string;
  /** The `data:` lines, joined with "\n". */
  data: string;
  /** The last event ID when this event was dispatched (the stream's most recent `id:`), if any. */
  id: string | undefined;
}

/**
 * An incremental parser of `text/event-stream` as the HTML standard's EventSource interprets it: lines
 * end in CRLF, LF or CR (a CRLF may be split across chunks); `:` lines are comments; a blank line
 * dispatches the event gathered so far, if it has data; an event cut off by the end of the stream is
 * never dispatched. Feed it decoded text (a streaming TextDecoder also drops the leading BOM).
 */
export class SseParser {
  /** The last `retry:` the server sent, in ms: how long to wait before reconnecting. */
  retryMs: number | undefined;
  private lastEventId: string | undefined;
  private eventType = "";
  private data: string[] = [];
  private partial = "";
  /** The previous chunk ended in CR: a LF first in the next one belongs to it. */
  private afterCr = false;

  constructor(lastEventId?: string) {
    this.lastEventId = lastEventId;
  }

  /** Parses `chunk`, returning the events it completes; an incomplete line waits for the next chunk. */
  push(chunk: string): SseEvent[] {
    const events: SseEvent[] = [];
    if (chunk === "") return events;
    let start = this.afterCr && chunk.startsWith("\n") ? 1 : 0;
    this.afterCr = false;
    for (let i = start; i < chunk.length; i++) {
      const code = chunk.charCodeAt(i);
      if (code !== 0x0a && code !== 0x0d) continue;
      const line = this.partial + chunk.slice(start, i);
      this.partial = "";
      if (code === 0x0d) {
        if (i + 1 === chunk.length) this.afterCr = true;
        else if (chunk.charCodeAt(i + 1) === 0x0a) i++;
      }
      start = i + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.partial += chunk.slice(start);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const raw = colon < 0 ? "" : line.slice(colon + 1);
    const value = raw.startsWith(" ") ? raw.slice(1) : raw;
    if (field === "event") this.eventType = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") {
      if (!value.includes("\0")) this.lastEventId = value;
    } else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const data = this.data;
    const event = this.eventType || "message";
    this.data = [];
    this.eventType = "";
    if (data.length === 0) return undefined;
    return { event, data: data.join("\n"), id: this.lastEventId };
  }
}
