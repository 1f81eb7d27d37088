import uPlot from "uplot";

/**
 * A uPlot time chart whose x-axis is always `window()` (the selected range ending now), never derived
 * from the data, with its legend below the plot (full series names, wrapping).
 */
const PALETTE = ["#4fb3ff", "#ffb454", "#7bd88f", "#ff6b6b", "#c792ea", "#f78c6c", "#89ddff", "#e6db74"];
const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000];
const AXIS = { stroke: "#8a96a3", grid: { stroke: "#26313d" }, ticks: { stroke: "#26313d" } };

export interface TimeChartOptions {
  height: number;
  legend: boolean;
  /** Counts: y ticks on whole numbers only. */
  integer?: boolean;
  /** [from, to] in seconds. */
  window(): [number, number];
}

export class TimeChart {
  private plot: uPlot;
  private labels: string[];

  constructor(private readonly target: HTMLElement, labels: string[], private readonly options: TimeChartOptions) {
    this.labels = labels;
    this.plot = this.create([[], ...labels.map(() => [])]);
    // Only a new width resizes: the legend's height changes the target's, which must not loop back here.
    new ResizeObserver(() => {
      if (this.width() !== this.plot.width) this.plot.setSize({ width: this.width(), height: options.height });
    }).observe(target);
  }

  /** The uPlot instance (tests read its x scale). */
  get instance(): uPlot {
    return this.plot;
  }

  /** New data (x in seconds), with the series it has; a different set of series rebuilds the chart. */
  update(labels: string[], data: uPlot.AlignedData) {
    if (labels.length !== this.labels.length || labels.some((l, i) => l !== this.labels[i])) {
      this.labels = labels;
      this.plot.destroy();
      this.plot = this.create(data);
    } else {
      this.plot.setData(data);
    }
    this.slide();
  }

  /** Puts the x scale on the window (the range changed, or time went on). */
  slide() {
    const [min, max] = this.options.window();
    this.plot.setScale("x", { min, max });
  }

  private width() {
    return Math.max(200, this.target.clientWidth);
  }

  private create(data: uPlot.AlignedData): uPlot {
    const plot = new uPlot(
      {
        width: this.width(),
        height: this.options.height,
        legend: { show: this.options.legend, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true, range: () => this.options.window() },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
        },
        axes: [{ ...AXIS, space: (_u, _axis, _min, _max, width) => (width > 600 ? 80 : 50) }, { ...AXIS, size: (_u, values) => 16 + 7 * Math.max(2, ...(values ?? []).map((v) => v.length)), ...(this.options.integer ? { incrs: INTEGER_STEPS } : {}) }],
        series: [{}, ...this.labels.map((label, i) => ({ label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: false }))],
      },
      data,
      this.target,
    );
    // uPlot sets no tooltip: the full name stays reachable however the legend is laid out.
    plot.root.querySelectorAll<HTMLElement>(".u-legend .u-label").forEach((label) => (label.title = label.textContent ?? ""));
    return plot;
  }
}
