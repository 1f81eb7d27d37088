import { registry } from "../../lib/metrics.ts";

const encoder = new TextEncoder();

/**
 * What the HTTP layer may take from the body at once. Bun takes everything queued in the body when the
 * socket turns writable, so the rest stays in our own queue, where it is counted.
 */
const BODY_HIGH_WATER_BYTES = 64 * 1024;
/** Chunks go to the body in views of at most this, so what Bun takes at once stays near the high-water mark. */
const MAX_CHUNK_BYTES = 16 * 1024;

/** Room always kept free for the last frame (`event: error`, `event: shutdown`), so it can be written when the buffer is full. */
const FINAL_FRAME_RESERVE_BYTES = 512;

const bufferPeak = registry.gauge("devpipe_sse_buffer_peak_bytes", "Most bytes one alert stream has had waiting for its client (queued or held back) since start; stays within SSE_MAX_BUFFER_BYTES");
let peakBytes = 0;

/** Why a stream ended: the client went away, or the server ended it (after a last frame). */
export type SseEnd = "client" | "server";

/**
 * A Server-Sent Events body that counts every byte waiting for its client: what is queued here and in
 * the body, plus what the producer holds back for it elsewhere (`setHeldBytes`). Producers check `fits`
 * before writing; `budget` leaves room for one final frame, which `end` writes whatever is waiting.
 */
export class SseStream {
  readonly body: ReadableStream<Uint8Array>;
  /** Resolves once, when the stream ends for any reason. */
  readonly ended: Promise<SseEnd>;
  readonly budget: number;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private readonly queue: Uint8Array[] = [];
  private ownQueuedBytes = 0;
  private heldBytes = 0;
  private state: "open" | "ending" | "closed" = "open";
  private waiters: { bytes: number; resolve: () => void }[] = [];
  private resolveEnded: (why: SseEnd) => void = () => {};

  constructor(maxBufferBytes: number) {
    this.budget = Math.max(0, maxBufferBytes - FINAL_FRAME_RESERVE_BYTES);
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.flush(),
        cancel: () => this.abandon(),
      },
      { highWaterMark: BODY_HIGH_WATER_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
    );
  }

  /** No more writes are taken (the stream ended or is ending). */
  get isClosed() {
    return this.state !== "open";
  }

  /** Bytes written and not yet taken by the HTTP layer. */
  get queuedBytes() {
    const inBody = this.state === "closed" ? 0 : BODY_HIGH_WATER_BYTES - (this.controller?.desiredSize ?? BODY_HIGH_WATER_BYTES);
    return this.ownQueuedBytes + Math.max(0, inBody);
  }

  /** Everything waiting for the client: queued and held back. */
  get waitingBytes() {
    return this.queuedBytes + this.heldBytes;
  }

  /** Whether `bytes` more can wait for the client within the budget. */
  fits(bytes: number) {
    return this.waitingBytes + bytes <= this.budget;
  }

  /** Bytes the producer keeps for this client outside the stream; they count towards the budget. */
  setHeldBytes(bytes: number) {
    this.heldBytes = bytes;
    this.notePeak();
  }

  /** Queues `chunk` (the caller has checked `fits`). */
  write(chunk: Uint8Array) {
    if (this.state !== "open" || chunk.byteLength === 0) return;
    this.push(chunk);
  }

  comment(text: string) {
    this.write(encoder.encode(`: ${text}\n\n`));
  }

  /** Resolves once at most `bytes` are queued (or the stream no longer takes writes). */
  whenQueuedAtMost(bytes: number): Promise<void> {
    if (this.state !== "open" || this.queuedBytes <= bytes) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  /** Writes a last frame after what is queued (into the reserve), then closes once the client has read it. */
  end(lastFrame: Uint8Array) {
    if (this.state !== "open") return;
    if (lastFrame.byteLength > FINAL_FRAME_RESERVE_BYTES) throw new Error(`a final SSE frame must fit in ${FINAL_FRAME_RESERVE_BYTES} bytes`);
    this.heldBytes = 0;
    this.push(lastFrame);
    this.state = "ending";
    this.flush();
    this.settle("server");
  }

  /** The client has gone: drop everything. */
  abandon() {
    if (this.state === "closed") return;
    this.state = "closed";
    this.queue.length = 0;
    this.ownQueuedBytes = 0;
    this.heldBytes = 0;
    try {
      this.controller?.close();
    } catch {
      // already closed or cancelled
    }
    this.settle("client");
  }

  private push(chunk: Uint8Array) {
    for (let at = 0; at < chunk.byteLength; at += MAX_CHUNK_BYTES) this.queue.push(chunk.subarray(at, at + MAX_CHUNK_BYTES));
    this.ownQueuedBytes += chunk.byteLength;
    this.notePeak();
    this.flush();
  }

  private flush() {
    const controller = this.controller;
    if (!controller || this.state === "closed") return;
    while (this.queue.length > 0 && (controller.desiredSize ?? 0) > 0) {
      const chunk = this.queue.shift();
      if (!chunk) break;
      this.ownQueuedBytes -= chunk.byteLength;
      controller.enqueue(chunk);
    }
    if (this.state === "ending" && this.queue.length === 0) {
      this.state = "closed";
      controller.close();
    }
    this.wake();
  }

  private wake() {
    if (this.waiters.length === 0) return;
    const queued = this.queuedBytes;
    const ready = this.state !== "open" ? this.waiters : this.waiters.filter((w) => queued <= w.bytes);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve();
  }

  private settle(why: SseEnd) {
    this.wake();
    this.resolveEnded(why);
  }

  private notePeak() {
    const waiting = this.waitingBytes;
    if (waiting <= peakBytes) return;
    peakBytes = waiting;
    bufferPeak.set({}, waiting);
  }
}

/** One SSE frame: `id` (when given), `event` and one `data` line. */
export function sseFrame(name: string, id: string | undefined, data: string): Uint8Array {
  return encoder.encode(`${id === undefined ? "" : `id: ${id}\n`}event: ${name}\ndata: ${data}\n\n`);
}
