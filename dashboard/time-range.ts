/** The time ranges the dashboard shows: every chart spans exactly the selected one, ending now. */
const MINUTE = 60_000;

export const RANGES = [
  { id: "5m", label: "5 min", ms: 5 * MINUTE },
  { id: "1h", label: "1 h", ms: 60 * MINUTE },
  { id: "24h", label: "24 h", ms: 24 * 60 * MINUTE },
] as const;

export type TimeRange = (typeof RANGES)[number];
export type RangeId = TimeRange["id"];

export const DEFAULT_RANGE: TimeRange = RANGES[0];

/** The range a stored id names; the default for anything else (nothing stored, an old or edited value). */
export function rangeById(id: string | null | undefined): TimeRange {
  return RANGES.find((r) => r.id === id) ?? DEFAULT_RANGE;
}

/** The x-axis of every chart, in uPlot's seconds: [now - range, now]. */
export function xWindow(range: TimeRange, now: number): [number, number] {
  return [(now - range.ms) / 1000, now / 1000];
}
