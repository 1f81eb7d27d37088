/**
 * Window specifications: immutable values whose grace period (allowed lateness) is required at
 * construction. Time windows align to the epoch: a 1-minute window starts on a whole minute.
 *   TimeWindows.ofSizeAndGrace(60_000, 120_000)                     tumbling, 1 min
 *   TimeWindows.ofSizeAndGrace(900_000, 120_000).advanceBy(60_000)  hopping ("sliding"), 15 min every 1 min
 *   SessionWindows.ofInactivityGapAndGrace(1_800_000, 120_000)       sessions split by 30 min of silence
 */
export interface TimeWindowSpec {
  readonly kind: "time";
  readonly sizeMs: number;
  readonly advanceMs: number;
  readonly graceMs: number;
}

export interface SessionWindowSpec {
  readonly kind: "session";
  readonly gapMs: number;
  readonly graceMs: number;
}

export type WindowSpec = TimeWindowSpec | SessionWindowSpec;

export interface Window {
  start: number;
  end: number;
}

function requirePositive(name: string, value: number) {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive whole number of milliseconds, got ${value}`);
}

function requireGrace(value: number) {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`grace must be a whole number of milliseconds ≥ 0, got ${value}`);
}

export const TimeWindows = {
  ofSizeAndGrace(sizeMs: number, graceMs: number): TimeWindowSpec & { advanceBy(advanceMs: number): TimeWindowSpec } {
    requirePositive("size", sizeMs);
    requireGrace(graceMs);
    const tumbling: TimeWindowSpec = Object.freeze({ kind: "time", sizeMs, advanceMs: sizeMs, graceMs });
    return Object.freeze({
      ...tumbling,
      advanceBy(advanceMs: number): TimeWindowSpec {
        requirePositive("advance", advanceMs);
        if (advanceMs > sizeMs) throw new RangeError(`advance (${advanceMs} ms) must not exceed size (${sizeMs} ms)`);
        return Object.freeze({ kind: "time", sizeMs, advanceMs, graceMs });
      },
    });
  },
};

export const SessionWindows = {
  ofInactivityGapAndGrace(gapMs: number, graceMs: number): SessionWindowSpec {
    requirePositive("gap", gapMs);
    requireGrace(graceMs);
    return Object.freeze({ kind: "session", gapMs, graceMs });
  },
};

/** Every time window containing `timestamp`, oldest first: starts are multiples of the advance. */
export function windowsFor(spec: TimeWindowSpec, timestamp: number): Window[] {
  const lastStart = Math.floor(timestamp / spec.advanceMs) * spec.advanceMs;
  const windows: Window[] = [];
  for (let start = lastStart; start > timestamp - spec.sizeMs; start -= spec.advanceMs) windows.push({ start, end: start + spec.sizeMs });
  return windows.reverse();
}
