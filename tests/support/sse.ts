import { connect } from "node:net";

/** A Server-Sent Events client for tests: parses the stream into events and comments as they arrive. */
export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

export function openSse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const messages: SseMessage[] = [];
  let ended = false;
  let status = 0;
  const ready = fetch(url, { headers, signal: controller.signal }).then(async (response) => {
    status = response.status;
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer = parseSse(buffer + decoder.decode(chunk, { stream: true }), messages);
      }
    } catch {
      // aborted by the test
    }
    ended = true;
  });
  return {
    messages,
    status: () => status,
    ended: () => ended,
    alerts: () => messages.filter((m) => m.event === "alert").map((m) => ({ id: m.id ?? "", alert: JSON.parse(m.data ?? "{}") as { event_id: string; key: string; rules: string[] } })),
    close() {
      controller.abort();
      return ready.catch(() => undefined);
    },
    done: () => ready,
  };
}

/** Parses SSE text into messages; returns what is left after the last complete one. */
function parseSse(buffer: string, messages: SseMessage[]): string {
  let end = buffer.indexOf("\n\n");
  while (end >= 0) {
    const message: SseMessage = {};
    for (const line of buffer.slice(0, end).split("\n")) {
      if (line.startsWith(":")) message.comment = line.slice(1).trim();
      else {
        const colon = line.indexOf(":");
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, "");
        if (field === "id" || field === "event" || field === "data") message[field] = value;
      }
    }
    messages.push(message);
    buffer = buffer.slice(end + 2);
    end = buffer.indexOf("\n\n");
  }
  return buffer;
}

/**
 * An SSE client on a raw TCP socket, so a test controls when it reads: `pause()` stops reading (the
 * kernel's buffers fill and the server's writes back up), `resume()` reads again. Decodes the HTTP/1.1
 * chunked body itself.
 */
export async function openRawSse(url: string, headers: Record<string, string> = {}) {
  const target = new URL(url);
  const socket = connect({ host: target.hostname === "localhost" ? "127.0.0.1" : target.hostname, port: Number(target.port) });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  const messages: SseMessage[] = [];
  const decoder = new TextDecoder();
  let raw = Buffer.alloc(0);
  let head: { status: number; headers: Record<string, string> } | undefined;
  let text = "";
  let bytes = 0;
  let ended = false;
  let bodyDone = false;
  const headReady = Promise.withResolvers<void>();
  const dechunk = () => {
    for (;;) {
      const line = raw.indexOf("\r\n");
      if (line < 0) return;
      const size = Number.parseInt(raw.subarray(0, line).toString("latin1"), 16);
      if (size === 0) {
        bodyDone = true;
        return;
      }
      if (raw.length < line + 2 + size + 2) return;
      text = parseSse(text + decoder.decode(raw.subarray(line + 2, line + 2 + size), { stream: true }), messages);
      raw = raw.subarray(line + 2 + size + 2);
    }
  };
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    raw = Buffer.concat([raw, chunk]);
    if (!head) {
      const end = raw.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine = "", ...lines] = raw.subarray(0, end).toString("latin1").split("\r\n");
      head = { status: Number(statusLine.split(" ")[1]), headers: Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()])) };
      raw = raw.subarray(end + 4);
      headReady.resolve();
    }
    if (!bodyDone) dechunk();
  });
  socket.on("close", () => {
    ended = true;
    headReady.resolve();
  });
  socket.on("error", () => undefined);
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n${lines.join("")}\r\n`);
  await headReady.promise;
  return {
    messages,
    status: () => head?.status ?? 0,
    /** Bytes read from the socket so far. */
    bytes: () => bytes,
    /** The server ended the body (chunked terminator) or the connection closed. */
    ended: () => ended || bodyDone,
    alerts: () => messages.filter((m) => m.event === "alert").map((m) => ({ id: m.id ?? "", alert: JSON.parse(m.data ?? "{}") as { event_id: string; key: string; rules: string[] } })),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.destroy(),
  };
}
