// Line and scatter charts over uPlot (vendored in ../vendor/uplot with its licence).
// Colours are Okabe–Ito, safe for the common colour-vision deficiencies; train lines are solid
// and validation lines dashed, so the two differ by more than colour.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h, num } from "./dom.js";

export const TRAIN = "#0072B2"; // blue
export const VAL = "#D55E00"; // vermillion
export const PRUNED = "#8C8C8C";
/** One colour per job on the compare page (Okabe–Ito, yellow last: it is faint on white). */
export const JOB_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
const DASH = [7, 4];
const AXIS = { stroke: "#5b6573", grid: { stroke: "#eef1f4", width: 1 }, ticks: { stroke: "#d9dee5", width: 1 } };

/**
 * A chart in a <figure class="chart">: `series` [{label, stroke, dash, key}], data set with
 * set(x, ys). `marker` draws a vertical line at an x value (the best epoch). Options:
 * `scatter` (points only), `log` (log y), `categories` (labels of integer x values), `logX`.
 */
export class Chart {
  constructor({ id, title, series, yLabel = "", xLabel = "epoch", height = 230, log = false, scatter = false, categories = null, logX = false, marker = null, yRange = null }) {
    this.series = series;
    this.opts = { yLabel, xLabel, height, scatter, categories, logX, yRange };
    this.log = log;
    this.marker = marker;
    this.x = [];
    this.ys = series.map(() => []);
    this.plot = h("div", { class: "plot" }, h("div", { class: "empty", text: "No data yet." }));
    this.el = h("figure", { class: "chart", id, dataset: { points: "0" } }, h("h3", { text: title }), this.plot);
    this.u = null;
    new ResizeObserver(() => this.resize()).observe(this.plot);
  }

  /** Replace the data: x ascending, ys one array per series (null for a gap). */
  set(x, ys) {
    this.x = x;
    this.ys = ys;
    const points = this.opts.scatter ? ys.reduce((n, y) => n + y.filter((v) => v != null).length, 0) : x.length;
    this.el.dataset.points = String(points);
    if (!x.length) return;
    if (!this.u) this.build();
    else this.u.setData(this.data());
  }

  setLog(on) {
    this.log = on;
    if (this.u) this.build();
  }

  setMarker(x) {
    this.marker = x;
    if (this.u) this.u.redraw(false, false);
  }

  data() {
    const ys = this.log ? this.ys.map((y) => y.map((v) => (v != null && v > 0 ? v : null))) : this.ys;
    return [this.x, ...ys];
  }

  width() {
    return Math.max(this.plot.clientWidth || this.el.clientWidth || 600, 240);
  }

  resize() {
    if (this.u && Math.abs(this.u.width - this.width()) > 2) this.u.setSize({ width: this.width(), height: this.opts.height });
  }

  build() {
    if (this.u) this.u.destroy();
    this.plot.replaceChildren();
    const { yLabel, xLabel, height, scatter, categories, logX, yRange } = this.opts;
    const xAxis = { ...AXIS, label: xLabel };
    const xScale = { time: false };
    if (categories) {
      xAxis.splits = () => categories.map((_, i) => i);
      xAxis.values = (u, splits) => splits.map((v) => categories[v] ?? "");
      xScale.range = [-0.5, categories.length - 0.5];
    } else if (logX) {
      xScale.distr = 3;
    }
    const chart = this;
    this.u = new uPlot(
      {
        width: this.width(),
        height,
        scales: { x: xScale, y: this.log ? { distr: 3 } : yRange ? { range: yRange } : {} },
        axes: [xAxis, { ...AXIS, label: yLabel, size: 64, values: (u, splits) => splits.map((v) => num(v, 3)) }],
        series: [
          { label: xLabel, value: (u, v) => (v == null ? "—" : categories ? categories[v] ?? "" : num(v)) },
          ...this.series.map((s) => ({
            label: s.label,
            stroke: s.stroke,
            width: scatter ? 0 : 2,
            dash: s.dash ? DASH : undefined,
            spanGaps: false,
            value: (u, v) => (v == null ? "—" : num(v)),
            ...(scatter ? { paths: () => null, points: { show: true, size: 9, width: 1.5, stroke: s.stroke, fill: s.stroke + "99" } } : {}),
          })),
        ],
        legend: { live: true },
        cursor: { drag: { x: true, y: false }, points: { size: 7 } },
        plugins: [
          {
            hooks: {
              draw: (u) => {
                if (chart.marker == null) return;
                const x = Math.round(u.valToPos(chart.marker, "x", true));
                const { top, height: hgt } = u.bbox;
                const ctx = u.ctx;
                ctx.save();
                ctx.strokeStyle = "#009E73";
                ctx.lineWidth = 1.5 * uPlot.pxRatio;
                ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
                ctx.beginPath();
                ctx.moveTo(x, top);
                ctx.lineTo(x, top + hgt);
                ctx.stroke();
                ctx.fillStyle = "#007a5a";
                ctx.font = `${11 * uPlot.pxRatio}px system-ui, sans-serif`;
                const label = `best ${chart.marker}`;
                const right = x + 4 * uPlot.pxRatio + ctx.measureText(label).width > u.bbox.left + u.bbox.width;
                ctx.textAlign = right ? "right" : "left";
                ctx.fillText(label, right ? x - 4 * uPlot.pxRatio : x + 4 * uPlot.pxRatio, top + 12 * uPlot.pxRatio);
                ctx.restore();
              },
            },
          },
        ],
      },
      this.data(),
      this.plot,
    );
    this.el.uplot = this.u; // for the browser tests: series, legend and data as drawn
  }
}

/** Loss and score charts of one job's epoch records: the series a job page and a sweep page share. */
export function metricSeries(records) {
  const classification = records.some((r) => r.accuracy != null || r.val_accuracy != null);
  const score = classification ? ["accuracy", "val_accuracy", "Accuracy"] : ["r2", "val_r2", "R²"];
  return { classification, score };
}

/** Epoch numbers and the values of `key` in records (null where a record lacks it). */
export function column(records, key) {
  return records.map((r) => (r[key] == null ? null : r[key]));
}
