import type uPlot from "uplot";

/** What the dashboard exposes on `window.devpipe` for the browser test (and for poking at it from devtools). */
export interface DashboardHandle {
  /** The charts by panel name; instances change when a chart's series do. */
  charts(): Record<string, uPlot>;
  /** The selected range, e.g. "5m". */
  range(): string;
  /** Refreshes completed (each reads /metrics and, with a key, the API). */
  refreshes: number;
}

declare global {
  interface Window {
    devpipe?: DashboardHandle;
  }
}

export function expose(handle: DashboardHandle) {
  window.devpipe = handle;
}
