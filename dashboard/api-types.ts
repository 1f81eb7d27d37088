/** The shapes of the public API the dashboard reads (ARCHITECTURE.md, "Public contract"). */
export type Json = Record<string, unknown>;

export interface Alert {
  alert_id?: string;
  event_id: string;
  key: string;
  rules: string[];
  event_time: string;
  event: Json;
}

/** An aggregate window; its metrics vary by view. */
export type Window = Json & { key: string; window_start: string; window_end: string };

export interface Run {
  run_id: number;
  job: string;
  started_at: string;
  finished_at: string | null;
  status: string;
  records: number;
  error: string | null;
}

export interface List<T> {
  items: T[];
  next_cursor: string | null;
}
