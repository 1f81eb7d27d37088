import type { Sql } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import { sseRejected } from "../../lib/metrics.ts";
import { alertsAfter } from "../../lib/store/alerts.ts";
import { encodeCursor } from "../query-params.ts";
import { type AlertBatch, type AlertHub, concatFrames, type StreamedAlert, streamed } from "./alert-hub.ts";
import { SseStream, sseFrame } from "./sse-stream.ts";

/** Alerts read from Postgres per replay query: with the buffer, the most one stream holds at once. */
const REPLAY_PAGE = 500;

export interface FeedRequest {
  key?: string;
  rule?: string;
  /** Replay alerts committed after this sequence number before going live. */
  afterSeq?: number;
  /** Replay only alerts with event_time from then on (epoch ms). */
  sinceMs?: number;
}

export interface FeedDeps {
  hub: AlertHub;
  sql: Sql;
  log: Logger;
  heartbeatMs: number;
  maxBufferBytes: number;
}

type EndReason = "slow_client" | "shutdown" | "unavailable";
const END_DETAIL: Record<EndReason, string> = {
  slow_client: "the client read too slowly; reconnect with Last-Event-ID set to `resume` to continue",
  shutdown: "the gateway is shutting down; reconnect with Last-Event-ID set to `resume` to continue",
  unavailable: "alerts could not be read; reconnect with Last-Event-ID set to `resume` to continue",
};

const lastSeq = (alerts: StreamedAlert[]) => alerts[alerts.length - 1]?.seq ?? -1;

/** Live alerts that arrived while the replay runs; they go out once it has caught up. */
class HeldBack {
  batches: AlertBatch[] = [];
  bytes = 0;
  push(batch: AlertBatch) {
    this.batches.push(batch);
    this.bytes += batch.frames.byteLength;
  }
  clear() {
    this.batches = [];
    this.bytes = 0;
  }
}

/**
 * One client's alert stream: a replay from Postgres (when it resumes), then live alerts from the hub,
 * in commit order with no gap or repeat, within `maxBufferBytes` of bytes waiting for the client.
 *
 * The replay reads a page only once the client has drained half its buffer. Live alerts arriving
 * meanwhile are held back and counted; when they would overflow the buffer they are dropped and the
 * replay reads them from Postgres instead (it runs on to the newest one dropped), as long as the client
 * keeps reading. A client that lets the buffer overflow (live, or twice in a row during a replay without
 * reading a page in between) gets a final `event: error` with the cursor to resume from, and is dropped.
 */
class AlertFeed {
  readonly stream: SseStream;
  /** The last alert written to the stream: where a reconnecting client resumes. */
  private position = 0;
  /** Held-back alerts while replaying; undefined once live. */
  private held: HeldBack | undefined = new HeldBack();
  /** The replay reads Postgres up to here; held-back alerts all come after it. */
  private replayThrough = 0;
  /** The replay wrote something since held-back alerts were last dropped. */
  private replayProgressed = true;
  private heartbeat: Timer | undefined;
  private unsubscribe = () => {};

  constructor(
    private readonly deps: FeedDeps,
    private readonly request: FeedRequest,
  ) {
    this.stream = new SseStream(deps.maxBufferBytes);
    void this.stream.ended.then(() => this.stop());
  }

  async open() {
    const { from, unsubscribe } = await this.deps.hub.subscribe({
      key: this.request.key,
      rule: this.request.rule,
      deliver: (batch) => this.deliver(batch),
      end: () => this.end("shutdown"),
    });
    this.unsubscribe = unsubscribe;
    if (this.stream.isClosed) return this.stop();
    this.position = this.request.afterSeq ?? from;
    this.replayThrough = from;
    this.stream.comment("connected");
    this.heartbeat = setInterval(() => this.comment("heartbeat"), this.deps.heartbeatMs);
    if (this.request.afterSeq === undefined) this.goLive();
    else void this.replay(from);
  }

  private stop() {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.held?.clear();
  }

  private deliver(batch: AlertBatch) {
    if (this.stream.isClosed) return;
    if (!this.held) return this.send(batch);
    if (this.stream.fits(batch.frames.byteLength)) {
      this.held.push(batch);
      this.stream.setHeldBytes(this.held.bytes);
      return;
    }
    // These go too: the replay reads them from Postgres.
    this.replayThrough = Math.max(this.replayThrough, lastSeq(batch.alerts));
    if (!this.makeRoomByDroppingHeld()) this.end("slow_client");
  }

  /** Live alerts, minus what was already sent (only at the replay/live seam). */
  private send(batch: AlertBatch) {
    if (lastSeq(batch.alerts) <= this.position) return;
    const first = batch.alerts[0];
    const frames = first && first.seq > this.position ? batch.frames : concatFrames(batch.alerts.filter((a) => a.seq > this.position));
    if (!this.room(frames.byteLength)) return this.end("slow_client");
    this.stream.write(frames);
    this.position = lastSeq(batch.alerts);
  }

  private comment(text: string) {
    if (this.stream.isClosed) return;
    if (!this.room(text.length + 4)) return this.end("slow_client");
    this.stream.comment(text);
  }

  /** Room for `bytes` more: held-back alerts give way while the client keeps reading the replay. */
  private room(bytes: number) {
    if (this.stream.fits(bytes)) return true;
    return this.makeRoomByDroppingHeld() && this.stream.fits(bytes);
  }

  /** Drops the held-back alerts for the replay to read later, unless the client read nothing since the last drop. */
  private makeRoomByDroppingHeld() {
    if (!this.held || !this.replayProgressed) return false;
    this.dropHeld();
    this.replayProgressed = false;
    return true;
  }

  private dropHeld() {
    if (!this.held) return;
    for (const batch of this.held.batches) this.replayThrough = Math.max(this.replayThrough, lastSeq(batch.alerts));
    this.held.clear();
    this.stream.setHeldBytes(0);
  }

  private async replay(sinceThrough: number) {
    const { sql, log } = this.deps;
    const { key, rule, sinceMs } = this.request;
    const since = sinceMs === undefined ? undefined : { ms: sinceMs, throughSeq: sinceThrough };
    const half = Math.floor(this.stream.budget / 2);
    try {
      for (;;) {
        await this.stream.whenQueuedAtMost(Math.floor(half / 2));
        if (this.stream.isClosed) return;
        const through = this.replayThrough;
        const page = streamed(await alertsAfter(sql, { afterSeq: this.position, throughSeq: through, key, rule, since, limit: REPLAY_PAGE }));
        await this.writeReplayed(page, half);
        if (this.stream.isClosed) return;
        // Caught up with what the hub has handed over (checked and acted on in the same turn as deliveries).
        if (page.length < REPLAY_PAGE && through === this.replayThrough) return this.goLive();
      }
    } catch (error) {
      log.error("alert stream replay failed", { error });
      this.end("unavailable");
    }
  }

  /** Writes replayed alerts while at most `half` the budget is queued, waiting for the client to read. */
  private async writeReplayed(page: StreamedAlert[], half: number) {
    let next = 0;
    while (next < page.length && !this.stream.isClosed) {
      const first = page[next]?.frame.byteLength ?? 0;
      const queued = this.stream.queuedBytes;
      if (queued > 0 && queued + first > half) {
        await this.stream.whenQueuedAtMost(Math.max(0, Math.min(Math.floor(half / 2), half - first)));
        continue;
      }
      let end = next;
      let bytes = 0;
      const limit = Math.max(half - queued, first);
      for (let size = first; end < page.length && bytes + size <= limit; size = page[end]?.frame.byteLength ?? 0) {
        bytes += size;
        end++;
      }
      const run = page.slice(next, end);
      // The client has drained its buffer, so it is reading: held-back alerts make way for the replay.
      if (!this.stream.fits(bytes)) this.dropHeld();
      this.stream.write(concatFrames(run));
      this.position = lastSeq(run);
      this.replayProgressed = true;
      next = end;
    }
  }

  private goLive() {
    const held = this.held;
    this.held = undefined;
    this.stream.setHeldBytes(0);
    for (const batch of held?.batches ?? []) if (!this.stream.isClosed) this.send(batch);
  }

  private end(reason: EndReason) {
    if (this.stream.isClosed) return;
    const resume = encodeCursor({ q: this.position });
    if (reason === "slow_client") {
      sseRejected.inc({ reason });
      this.deps.log.warn("alert stream dropped: the client reads too slowly", { buffer_bytes: this.deps.maxBufferBytes, resume_seq: this.position });
    }
    const data = JSON.stringify({ reason, resume, detail: END_DETAIL[reason] });
    this.stream.end(sseFrame(reason === "shutdown" ? "shutdown" : "error", resume, data));
  }
}

/** Subscribes a new alert stream to the hub and starts it; rejects when the hub cannot take it (shutting down, database down). */
export async function openAlertFeed(deps: FeedDeps, request: FeedRequest): Promise<SseStream> {
  const feed = new AlertFeed(deps, request);
  try {
    await feed.open();
  } catch (error) {
    feed.stream.abandon();
    throw error;
  }
  return feed.stream;
}
