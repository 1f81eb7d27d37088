import { QueryRejectedError } from "../errors.ts";

/**
 * Admission for lake queries: `maxConcurrent` run at once, up to `maxQueued` more wait at most
 * `queueTimeoutMs` for a slot (first come, first served), the rest are rejected. One client (API key)
 * holds at most max(1, maxConcurrent - 1) running slots, so it can never take them all; its extra
 * queries wait even while a slot is free, which stays free for another client.
 */
export interface SlotLimits {
  maxConcurrent: number;
  maxQueued: number;
  queueTimeoutMs: number;
}

interface Waiter {
  client: string;
  grant: () => void;
  timer: Timer;
}

export type ReleaseSlot = () => void;

export function createQuerySlots(limits: SlotLimits, onChange: (state: { running: number; queued: number }) => void = () => undefined) {
  const perClient = Math.max(1, limits.maxConcurrent - 1);
  const retryAfterS = Math.max(1, Math.ceil(limits.queueTimeoutMs / 1000));
  const held = new Map<string, number>();
  const queue: Waiter[] = [];
  let running = 0;

  const changed = () => onChange({ running, queued: queue.length });
  const canRun = (client: string) => running < limits.maxConcurrent && (held.get(client) ?? 0) < perClient;

  const take = (client: string): ReleaseSlot => {
    running++;
    held.set(client, (held.get(client) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      running--;
      const left = (held.get(client) ?? 1) - 1;
      if (left === 0) held.delete(client);
      else held.set(client, left);
      admitWaiting();
      changed();
    };
  };

  /** Grants freed slots to the oldest waiters that may run. */
  const admitWaiting = () => {
    for (let i = 0; i < queue.length && running < limits.maxConcurrent; ) {
      const waiter = queue[i];
      if (waiter && canRun(waiter.client)) {
        queue.splice(i, 1);
        clearTimeout(waiter.timer);
        waiter.grant();
      } else i++;
    }
  };

  return {
    /** Resolves with the slot's release once the query may run; rejects with QueryRejectedError (429). */
    acquire(client: string): Promise<ReleaseSlot> {
      // While a slot is free, nobody who could take it is waiting (admitWaiting runs on every release).
      if (canRun(client)) {
        const release = take(client);
        changed();
        return Promise.resolve(release);
      }
      if (queue.length >= limits.maxQueued || limits.queueTimeoutMs === 0) {
        return Promise.reject(new QueryRejectedError(`${running} lake queries are running and ${queue.length} waiting; try again shortly`, retryAfterS));
      }
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          client,
          grant: () => resolve(take(client)),
          timer: setTimeout(() => {
            const at = queue.indexOf(waiter);
            if (at >= 0) queue.splice(at, 1);
            changed();
            reject(new QueryRejectedError(`no lake query slot came free within ${limits.queueTimeoutMs} ms; try again shortly`, retryAfterS));
          }, limits.queueTimeoutMs),
        };
        queue.push(waiter);
        changed();
      });
    },
    state: () => ({ running, queued: queue.length }),
  };
}

export type QuerySlots = ReturnType<typeof createQuerySlots>;
