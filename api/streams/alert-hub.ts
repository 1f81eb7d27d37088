import type { Sql } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import { registry } from "../../lib/metrics.ts";
import { alertsAfter, latestAlertSeq, type SequencedAlert } from "../../lib/store/alerts.ts";
import { encodeCursor } from "../query-params.ts";

/** An alert with its SSE frame (`id`, `event`, `data`) encoded once for every stream that sends it. */
export interface StreamedAlert extends SequencedAlert {
  frame: Uint8Array;
}

const encoder = new TextEncoder();
/** The frames of `alerts` in one buffer. */
export function concatFrames(alerts: StreamedAlert[]): Uint8Array {
  const out = new Uint8Array(alerts.reduce((n, a) => n + a.frame.byteLength, 0));
  let at = 0;
  for (const a of alerts) {
    out.set(a.frame, at);
    at += a.frame.byteLength;
  }
  return out;
}

export const streamed = (alerts: SequencedAlert[]): StreamedAlert[] =>
  alerts.map((a) => ({ ...a, frame: encoder.encode(`id: ${encodeCursor({ q: a.seq })}\nevent: alert\ndata: ${JSON.stringify(a.alert)}\n\n`) }));

/** Alerts for one filter, plus all their frames in one buffer shared by the subscribers of that filter. */
export interface AlertBatch {
  alerts: StreamedAlert[];
  frames: Uint8Array;
}

export interface AlertSubscriber {
  key?: string;
  rule?: string;
  /** New alerts matching the filter, in commit order. */
  deliver(batch: AlertBatch): void;
  /** The gateway is shutting down: send a last event and end the stream. */
  end(reason: "shutdown"): void;
}

const PAGE = 1_000;
const sseClients = registry.gauge("devpipe_sse_clients", "Open alert streams (GET /v1/alerts/stream)");

const matches = (s: AlertSubscriber, { alert }: StreamedAlert) => (s.key === undefined || alert.key === s.key) && (s.rule === undefined || alert.rules.includes(s.rule));

/**
 * One poller per gateway for every alert stream: it reads alerts committed after the last one it saw
 * (one indexed query per tick, whatever the number of clients) and hands each subscriber those that
 * match its filter. It runs only while someone is subscribed.
 */
export function createAlertHub(sql: Sql, options: { pollMs: number; logger: Logger }) {
  const subscribers = new Set<AlertSubscriber>();
  let lastSeq: number | undefined;
  let initialising: Promise<number> | undefined;
  let timer: Timer | undefined;
  let polling = false;
  let closed = false;
  /** Bumped whenever the hub goes idle, so a poll still running then does not move the position. */
  let generation = 0;

  const position = async (): Promise<number> => {
    if (lastSeq !== undefined) return lastSeq;
    initialising ??= latestAlertSeq(sql).then((seq) => {
      lastSeq ??= seq;
      return lastSeq;
    });
    try {
      return await initialising;
    } finally {
      initialising = undefined;
    }
  };

  const poll = async () => {
    if (polling) return;
    polling = true;
    const polled = generation;
    try {
      let after = await position();
      for (;;) {
        const page = streamed(await alertsAfter(sql, { afterSeq: after, limit: PAGE }));
        const last = page[page.length - 1];
        if (!last || generation !== polled) break;
        after = last.seq;
        // Position and delivery move together, in one turn of the event loop: a subscriber that reads the
        // position gets every later alert delivered.
        lastSeq = after;
        // Subscribers with the same filter share one batch: its frames are written once, not per client.
        const batches = new Map<string, AlertBatch | null>();
        for (const subscriber of subscribers) {
          const filter = `${subscriber.key ?? ""}\u0000${subscriber.rule ?? ""}`;
          let batch = batches.get(filter);
          if (batch === undefined) {
            const wanted = page.filter((a) => matches(subscriber, a));
            batch = wanted.length > 0 ? { alerts: wanted, frames: concatFrames(wanted) } : null;
            batches.set(filter, batch);
          }
          if (batch) subscriber.deliver(batch);
        }
        if (page.length < PAGE) break;
      }
    } catch (error) {
      options.logger.warn("alert stream poll failed; retrying", { error });
    } finally {
      polling = false;
    }
  };

  return {
    /** Starts delivering to `subscriber`; resolves the sequence number from which delivery starts. */
    async subscribe(subscriber: AlertSubscriber): Promise<{ from: number; unsubscribe: () => void }> {
      if (closed) throw new Error("alert hub closed");
      subscribers.add(subscriber);
      sseClients.set({}, subscribers.size);
      timer ??= setInterval(() => void poll(), options.pollMs);
      const unsubscribe = () => {
        subscribers.delete(subscriber);
        sseClients.set({}, subscribers.size);
        if (subscribers.size === 0) {
          clearInterval(timer);
          timer = undefined;
          // Idle: forget the position. The next subscriber starts from the newest alert instead of being handed,
          // as live, everything committed while nobody listened (it replays that from Postgres, under flow control).
          lastSeq = undefined;
          generation++;
        }
      };
      try {
        return { from: await position(), unsubscribe };
      } catch (error) {
        unsubscribe();
        throw error;
      }
    },
    subscribers: () => subscribers.size,
    /** Ends every stream with a final event; later subscriptions are refused. */
    close() {
      closed = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      for (const subscriber of [...subscribers]) subscriber.end("shutdown");
      subscribers.clear();
      sseClients.set({}, 0);
    },
  };
}

export type AlertHub = ReturnType<typeof createAlertHub>;
