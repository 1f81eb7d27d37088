const encoder = new TextEncoder();

/** What the consumer (the HTTP response) may hold before our own buffer takes over. */
const STREAM_HIGH_WATER_BYTES = 64 * 1024;

/**
 * A Server-Sent Events body with a bounded buffer. Writes beyond what the client has read are kept in
 * memory up to `maxBufferBytes`; past that the client is too slow and the stream ends (it can reconnect
 * with Last-Event-ID and replay what it missed). `drained()` lets a producer wait for room.
 */
export class SseStream {
  readonly body: ReadableStream<Uint8Array>;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private closed = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly maxBufferBytes: number,
    private readonly onClose: (why: "client" | "overflow" | "server") => void,
  ) {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.flush(),
        cancel: () => this.finish("client"),
      },
      { highWaterMark: STREAM_HIGH_WATER_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
    );
  }

  get isClosed() {
    return this.closed;
  }

  event(name: string, id: string | undefined, data: string) {
    this.write(`${id === undefined ? "" : `id: ${id}\n`}event: ${name}\ndata: ${data}\n\n`);
  }

  /** A frame already encoded (shared by every stream that sends it). */
  frame(bytes: Uint8Array) {
    this.enqueue(bytes);
  }

  comment(text: string) {
    this.write(`: ${text}\n\n`);
  }

  /** Resolves once the buffer is at most half full (or the stream has ended). */
  drained(): Promise<void> {
    if (this.closed || this.queuedBytes <= this.maxBufferBytes / 2) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The client has gone: drop everything. */
  abandon() {
    this.finish("client");
  }

  /** Ends the stream after what is buffered. */
  close() {
    if (this.closed) return;
    this.flush();
    this.finish("server");
  }

  private write(text: string) {
    this.enqueue(encoder.encode(text));
  }

  private enqueue(chunk: Uint8Array) {
    if (this.closed) return;
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
    this.flush();
    if (this.queuedBytes > this.maxBufferBytes) this.finish("overflow");
  }

  private flush() {
    const controller = this.controller;
    if (!controller || this.closed) return;
    while (this.queue.length > 0 && (controller.desiredSize ?? 0) > 0) {
      const chunk = this.queue.shift();
      if (!chunk) break;
      this.queuedBytes -= chunk.byteLength;
      controller.enqueue(chunk);
    }
    if (this.queuedBytes <= this.maxBufferBytes / 2) this.wake();
  }

  private wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private finish(why: "client" | "overflow" | "server") {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.wake();
    if (why !== "client") {
      try {
        this.controller?.close();
      } catch {
        // already closed by the client
      }
    }
    this.onClose(why);
  }
}
