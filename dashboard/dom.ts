/** Small DOM helpers. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing from the page`);
  return element as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string; title?: string } = {}, ...children: Node[]) {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  if (props.title) node.title = props.title;
  node.append(...children);
  return node;
}

export type Cell = string | number | { text: string; title?: string; className?: string };

/** Replaces a table's rows: a header row and one row per entry; a cell may carry a tooltip (for cut text). */
export function fillTable(table: HTMLTableElement, header: string[], rows: Cell[][]) {
  const cell = (tag: "th" | "td", value: Cell) => (typeof value === "object" ? el(tag, value) : el(tag, { text: String(value) }));
  table.replaceChildren(el("tr", {}, ...header.map((h) => cell("th", h))), ...rows.map((row) => el("tr", {}, ...row.map((value) => cell("td", value)))));
}

/** Shows a panel's empty state (what would fill it) while it has no data. */
export function setEmpty(panel: string, empty: boolean) {
  byId(`empty-${panel}`).hidden = !empty;
  document.querySelector<HTMLElement>(`[data-panel="${panel}"]`)?.classList.toggle("is-empty", empty);
}

export const clock = (t: number) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
