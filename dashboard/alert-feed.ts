import type { Alert } from "./api-types.ts";
import { clock, el, setEmpty } from "./dom.ts";

/** The "Latest alerts" list: the newest alerts by event time (from the stream and the API reads), one line each. */
const SHOWN = 30;

export class AlertFeed {
  private alerts: Alert[] = [];
  private ids = new Set<string>();

  constructor(private readonly list: HTMLUListElement) {}

  /** Takes the alerts among `incoming` newer than what is shown; redraws when any was. */
  offer(incoming: Alert[]) {
    const last = this.alerts.length >= SHOWN ? this.alerts[this.alerts.length - 1] : undefined;
    const oldest = last ? Date.parse(last.event_time) : Number.NEGATIVE_INFINITY;
    const fresh = incoming.filter((a) => !this.ids.has(a.event_id) && Date.parse(a.event_time) > oldest);
    if (fresh.length === 0) return;
    const kept = [...this.alerts, ...fresh].sort((a, b) => Date.parse(b.event_time) - Date.parse(a.event_time)).slice(0, SHOWN);
    this.alerts = kept;
    this.ids = new Set(kept.map((a) => a.event_id));
    this.render();
  }

  render() {
    this.list.replaceChildren(...this.alerts.map(row));
    setEmpty("feed", this.alerts.length === 0);
  }
}

function row(alert: Alert): HTMLLIElement {
  const colour = alert.event.color_name ? ` (${String(alert.event.color_name)})` : "";
  const what = `car ${alert.key}${colour} · ${String(alert.event.speed ?? "?")} km/h · ${String(alert.event.rpm ?? "?")} rpm · gear ${String(alert.event.gear ?? "?")}`;
  const rules = alert.rules.join(", ");
  const time = clock(Date.parse(alert.event_time));
  const item = el(
    "li",
    { title: `${rules} — ${what} — ${new Date(alert.event_time).toLocaleString()}` },
    el("span", { className: "rules", text: rules }),
    el("span", { className: "what", text: what }),
    el("time", { className: "muted", text: time }),
  );
  item.dataset.eventId = alert.event_id;
  return item;
}
