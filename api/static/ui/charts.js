// Line and scatter charts over uPlot (vendored in ../vendor/uplot with its licence).
// Colours are Okabe–Ito, safe for the common colour-vision deficiencies; train lines are solid
// and validation lines dashed, so the two differ by more than colour.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { clear, h, num } from "./dom.js";

export const TRAIN = "#0072B2"; // blue
export const VAL = "#D55E00"; // vermillion
export const PRUNED = "#8C8C8C";
/** One colour per job on the compare page (Okabe–Ito, yellow last: it is faint on white). */
export const JOB_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
const DASH = [7, 4];
const AXIS = { stroke: "#5b6573", grid: { stroke: "#eef1f4", width: 1 }, ticks: { stroke: "#d9dee5", width: 1 } };

// ---- tick labels (uPlot's own round to 3 decimals: 1e-5 and 1e-4 were both "0")

const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };

/** v as m·10ⁿ (10ⁿ when m is 1), m with `digits` decimals at most. */
export function powerOfTen(v, digits = 2) {
  if (v === 0) return "0";
  const exp = Math.floor(Math.log10(Math.abs(v)) + 1e-9);
  const mantissa = Number((v / 10 ** exp).toFixed(digits));
  const power = "10" + String(exp).replace(/./g, (c) => SUPERSCRIPT[c]);
  return mantissa === 1 ? power : mantissa === -1 ? `-${power}` : `${mantissa}·${power}`;
}

/** Labels of a log axis: plain numbers when every tick lies in 0.01–10000, else powers of ten (10⁻⁵, 2·10⁻⁵…). */
export function logTicks(u, splits) {
  const shown = splits.filter((v) => v != null && v > 0);
  const plain = shown.every((v) => v >= 0.01 && v <= 10000);
  return splits.map((v) => (v == null || !(v > 0) ? "" : plain ? String(Number(v.toPrecision(3))) : powerOfTen(v)));
}

/** The decimals a step between ticks needs (0.25 → 2, 5 → 0). */
function decimalsOf(step) {
  const [, fraction = ""] = String(Number(step.toPrecision(6))).split(".");
  return fraction.length;
}

/** Labels of a linear axis: as many decimals as the step between ticks needs; powers of ten for steps under 0.0001 or values of a million. */
export function linearTicks(u, splits, axisIdx, space, step) {
  const shown = splits.filter((v) => v != null);
  const biggest = Math.max(0, ...shown.map(Math.abs));
  if (!(step > 0)) return splits.map((v) => (v == null ? "" : num(v)));
  if (step < 1e-4 || biggest >= 1e6) {
    const digits = Math.max(0, Math.floor(Math.log10(biggest || 1) + 1e-9) - Math.floor(Math.log10(step) + 1e-9) + 1);
    return splits.map((v) => (v == null ? "" : powerOfTen(v, Math.min(digits, 4))));
  }
  const decimals = decimalsOf(step);
  return splits.map((v) => (v == null ? "" : String(Number(v.toFixed(decimals)))));
}

/** The share of the first epochs a fitted y-axis leaves out (training's first steep fall or climb). */
export const FIT_SKIP = 0.1;

/**
 * The y range of a `fit` chart: from the data after the first tenth of the epochs (all of it under
 * 5 epochs), widened to every value on the side the curves move towards (`fit` "down": every
 * minimum; "up": every maximum), padded 5 %, never below 0 for data that is not. `cut`: some of the
 * first epochs' values lie outside it.
 */
export function fitRange(n, ys, fit) {
  const skip = n >= 5 ? Math.max(1, Math.round(n * FIT_SKIP)) : 0;
  let [lo, hi, min, max] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const y of ys) {
    y.forEach((v, i) => {
      if (v == null || !Number.isFinite(v)) return;
      [min, max] = [Math.min(min, v), Math.max(max, v)];
      if (i >= skip) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    });
  }
  if (!(hi >= lo)) return null;
  if (fit === "down") lo = min;
  else hi = max;
  const span = hi - lo || Math.abs(hi) * 0.1 || 1;
  const range = [lo - 0.05 * span, hi + 0.05 * span];
  if (min >= 0 && range[0] < 0) range[0] = 0;
  return { range, skip, cut: max > range[1] || min < range[0] };
}

/**
 * A chart in a <figure class="chart">: `series` [{label, stroke, dash, key}], data set with
 * set(x, ys). `marker` draws a vertical line at an x value (the best epoch). Options:
 * `scatter` (points only), `log` (log y), `categories` (labels of integer x values), `logX`,
 * `yRange` (fixed), `fit`: "down" for curves that fall (loss) or "up" for curves that climb
 * (accuracy, R²) — a linear y-axis fitted to the epochs after the first tenth, so that the
 * train/validation gap fills the plot rather than the first epochs' fall; every minimum (of a
 * falling curve) or maximum (of a climbing one) stays in view. Log scale shows every epoch.
 */
export class Chart {
  constructor({ id, title, series, yLabel = "", xLabel = "epoch", height = 230, log = false, scatter = false, categories = null, logX = false, marker = null, yRange = null, fit = null }) {
    this.series = series;
    this.opts = { yLabel, xLabel, height, scatter, categories, logX, yRange, fit };
    this.log = log;
    this.marker = marker;
    this.x = [];
    this.ys = series.map(() => []);
    this.plot = h("div", { class: "plot" }, h("div", { class: "empty", text: "No data yet." }));
    this.whole = false; // a fit chart the reader asked to show every epoch of
    this.caption = h("figcaption", { class: "muted small", hidden: true });
    this.el = h("figure", { class: "chart", id, dataset: { points: "0" } }, h("h3", { text: title }), this.plot, this.caption);
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

  /** Whether the y-axis is fitted to the later epochs now (a linear `fit` chart the reader has not widened). */
  fitting() {
    return Boolean(this.opts.fit) && !this.log && !this.whole;
  }

  /** The y range uPlot asks for on every setData; the caption says when the first epochs run off the plot. */
  fitted(dataMin, dataMax) {
    const fit = fitRange(this.x.length, this.ys, this.opts.fit);
    this.caption.hidden = !fit?.cut;
    this.el.dataset.fitted = fit?.cut ? "cut" : "whole";
    if (fit?.cut) {
      const toggle = h("button", { type: "button", class: "linkish fit-toggle", text: "show every epoch", onclick: () => this.setWhole(true) });
      clear(this.caption, `The y-axis fits the epochs after the first ${fit.skip}: earlier values run off the plot. `, toggle);
    }
    if (fit) return fit.range;
    return dataMin == null ? [0, 1] : uPlot.rangeNum(dataMin, dataMax, 0.1, true);
  }

  /** Widen a fit chart to every epoch (`on`), or fit it to the later epochs again. */
  setWhole(on) {
    this.whole = on;
    if (this.u) this.build();
    if (on) {
      this.caption.hidden = false;
      this.el.dataset.fitted = "off";
      clear(this.caption, "Every epoch shown. ", h("button", { type: "button", class: "linkish fit-toggle", text: "fit the y-axis to the later epochs", onclick: () => this.setWhole(false) }));
    }
  }

  resize() {
    if (this.u && Math.abs(this.u.width - this.width()) > 2) this.u.setSize({ width: this.width(), height: this.opts.height });
  }

  build() {
    if (this.u) this.u.destroy();
    this.plot.replaceChildren();
    const { yLabel, xLabel, height, scatter, categories, logX, yRange, fit } = this.opts;
    const xAxis = { ...AXIS, label: xLabel, values: linearTicks };
    const xScale = { time: false };
    if (categories) {
      xAxis.splits = () => categories.map((_, i) => i);
      xAxis.values = (u, splits) => splits.map((v) => categories[v] ?? "");
      xScale.range = [-0.5, categories.length - 0.5];
    } else if (logX) {
      xScale.distr = 3;
      xAxis.values = logTicks;
    }
    const chart = this;
    let yScale = {};
    if (this.log) yScale = { distr: 3 };
    else if (yRange) yScale = { range: yRange };
    else if (this.fitting()) yScale = { range: (u, min, max) => chart.fitted(min, max) };
    if (!this.fitting()) {
      this.caption.hidden = true;
      delete this.el.dataset.fitted;
    }
    this.u = new uPlot(
      {
        width: this.width(),
        height,
        scales: { x: xScale, y: yScale },
        axes: [xAxis, { ...AXIS, label: yLabel, size: 64, values: this.log ? logTicks : linearTicks }],
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
