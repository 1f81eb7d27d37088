import { el } from "./dom.ts";
import { RANGES, type TimeRange } from "./time-range.ts";

/** The 5 min / 1 h / 24 h buttons; the pressed one is the range every chart and query uses. */
export function rangePicker(container: HTMLElement, selected: TimeRange, onChange: (range: TimeRange) => void) {
  const buttons = RANGES.map((range) => {
    const button = el("button", { text: range.label, title: `Show the last ${range.label}` });
    button.type = "button";
    button.dataset.range = range.id;
    button.addEventListener("click", () => {
      select(range);
      onChange(range);
    });
    return button;
  });
  const select = (range: TimeRange) => buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.range === range.id)));
  container.replaceChildren(...buttons);
  select(selected);
}
