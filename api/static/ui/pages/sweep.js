// A sweep: sortable leaderboard, the objective against each parameter (one point per finished
// trial), the best trial's curves; refreshed every two seconds while it runs.

import { api, every, find } from "../api.js";
import { Chart, JOB_COLOURS, PRUNED, TRAIN, VAL, column } from "../charts.js";
import { badge, cell, clear, errorNotice, h, href, idChip, link, notFound, num, percent, setTitle, when } from "../dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const FINISHED = new Set(["succeeded", "pruned"]);

export async function render(main, { params }) {
  const [sweepId] = params;
  const sweep = await find(`/v1/sweeps/${encodeURIComponent(sweepId)}`);
  if (!sweep) return notFound(main, "sweep", sweepId, ["Back to the sweeps", "/ui/sweeps"]);
  new SweepPage(main, sweep).start();
}

/** How a parameter is drawn on an x axis: categories for a list of values, else numbers (log for log_uniform). */
function axisOf(name, spec, rows) {
  const declared = spec.parameters?.[name] || {};
  const values = rows.map((r) => r.parameters[name]);
  if (declared.values || values.some((v) => typeof v !== "number")) {
    const keys = [...new Set((declared.values || values).map((v) => JSON.stringify(v)))];
    keys.sort((a, b) => {
      const [x, y] = [JSON.parse(a), JSON.parse(b)];
      return typeof x === "number" && typeof y === "number" ? x - y : a.localeCompare(b);
    });
    return { categories: keys.map((k) => cell(JSON.parse(k))), x: (v) => keys.indexOf(JSON.stringify(v)) };
  }
  return { categories: null, logX: declared.distribution === "log_uniform", x: (v) => v };
}

class SweepPage {
  constructor(main, sweep) {
    this.main = main;
    this.sweep = sweep;
    this.sort = { key: "rank", dir: 1 };
    this.head = h("section", { id: "sweep-head" });
    this.problem = h("div");
    this.board = h("div", { id: "leaderboard" });
    this.scatter = h("div", { class: "charts", id: "objective-charts" });
    this.best = h("section", { id: "best-trial" });
    this.bestCharts = null;
    this.scatterCharts = new Map();
    this.bestId = null;
    clear(
      main,
      this.head,
      this.problem,
      h("h2", { text: "Objective against each parameter" }),
      h("p", { class: "muted small", text: "One point per finished trial (pruned trials in grey)." }),
      this.scatter,
      h("h2", { text: "Leaderboard" }),
      h("p", { class: "muted small", text: "Click a column heading to sort." }),
      this.board,
      h("h2", { text: "Best trial" }),
      this.best,
    );
  }

  params() {
    return [...new Set(this.sweep.leaderboard.flatMap((r) => Object.keys(r.parameters)))];
  }

  drawHead() {
    const s = this.sweep;
    setTitle(s.name, "Sweep");
    const done = s.leaderboard.filter((r) => TERMINAL.has(r.status) || r.status === "pruned").length;
    const importance = s.importance && Object.keys(s.importance).length ? s.importance : null;
    clear(
      this.head,
      h("div", { class: "row" }, h("h1", { text: s.name }), badge(s.status)),
      h(
        "div",
        { class: "meta" },
        h("span", { class: "id-field" }, "id ", idChip(s.id)),
        h("span", {}, "strategy ", h("b", { text: s.strategy })),
        h("span", {}, "objective ", h("b", { text: `${s.objective.metric} (${s.objective.mode})` })),
        h("span", {}, "created ", when(s.created_at)),
        s.finished_at ? h("span", {}, "finished ", when(s.finished_at)) : null,
      ),
      h(
        "div",
        { class: "toolbar" },
        h("progress", { max: 1, value: s.n_trials ? done / s.n_trials : 0 }),
        h("span", { id: "sweep-counts" }, `${done} of ${s.n_trials} trials finished · ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ")}`),
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "danger", text: "Cancel sweep", disabled: TERMINAL.has(s.status) || s.status === "cancelling", onclick: () => this.cancel() }),
      ),
      importance
        ? h(
            "div",
            { class: "card", id: "importance" },
            h("h3", { text: "Parameter importance (share of the objective's variance)" }),
            h("table", {}, h("tbody", {}, Object.entries(importance).sort((a, b) => b[1] - a[1]).map(([p, share]) => h("tr", {}, h("th", { text: p }), h("td", {}, h("progress", { max: 1, value: share })), h("td", { class: "num", text: percent(share) }))))),
          )
        : null,
    );
  }

  drawScatter() {
    const s = this.sweep;
    const rows = s.leaderboard.filter((r) => FINISHED.has(r.status) && r.objective != null);
    const params = this.params();
    if (!params.length) {
      clear(this.scatter, h("p", { class: "muted", text: "This sweep has no parameters." }));
      return;
    }
    for (const name of params) {
      const axis = axisOf(name, s.spec, s.leaderboard);
      let chart = this.scatterCharts.get(name);
      if (!chart) {
        chart = new Chart({
          id: `objective-${name}`,
          title: `${s.objective.metric} vs ${name}`,
          xLabel: name,
          yLabel: s.objective.metric,
          scatter: true,
          categories: axis.categories,
          logX: axis.logX,
          series: [{ label: "succeeded", stroke: JOB_COLOURS[0] }, { label: "pruned", stroke: PRUNED }],
        });
        chart.el.dataset.parameter = name;
        this.scatterCharts.set(name, chart);
        this.scatter.append(chart.el);
      }
      const points = rows.map((r) => [axis.x(r.parameters[name]), r.objective, r.status]).sort((a, b) => a[0] - b[0]);
      chart.set(
        points.map((p) => p[0]),
        [points.map((p) => (p[2] === "succeeded" ? p[1] : null)), points.map((p) => (p[2] === "pruned" ? p[1] : null))],
      );
    }
  }

  drawBoard() {
    const params = this.params();
    const columns = [
      { key: "rank", label: "#", num: true, value: (r) => r.rank },
      { key: "index", label: "Trial", num: true, value: (r) => r.index, show: (r) => link(`trial ${r.index}`, href("jobs", r.trial_id)) },
      { key: "status", label: "Status", value: (r) => r.status, show: (r) => badge(r.status) },
      { key: "objective", label: this.sweep.objective.metric, num: true, value: (r) => r.objective },
      { key: "best_epoch", label: "Best epoch", num: true, value: (r) => r.best_epoch },
      { key: "train_val_gap", label: "Train-val gap", num: true, value: (r) => r.train_val_gap },
      { key: "epochs_run", label: "Epochs run", num: true, value: (r) => r.epochs_run },
      ...params.map((p) => ({ key: `param:${p}`, label: p, num: true, value: (r) => r.parameters[p] })),
    ];
    const rows = this.sweep.leaderboard.map((r, i) => ({ ...r, rank: i + 1 }));
    const col = columns.find((c) => c.key === this.sort.key) || columns[0];
    const compare = (a, b) => {
      const [x, y] = [col.value(a), col.value(b)];
      if (x == null || y == null) return x == null ? (y == null ? 0 : 1) : -1; // missing values last
      if (typeof x === "number" && typeof y === "number") return (x - y) * this.sort.dir;
      return String(cell(x)).localeCompare(String(cell(y))) * this.sort.dir;
    };
    rows.sort(compare);
    const bestId = this.sweep.best_trial?.trial_id;
    const head = h(
      "tr",
      {},
      columns.map((c) =>
        h(
          "th",
          {
            class: `sortable${c.num ? " num" : ""}`,
            scope: "col",
            tabindex: "0",
            dataset: { key: c.key },
            "aria-sort": c.key === this.sort.key ? (this.sort.dir > 0 ? "ascending" : "descending") : "none",
            onclick: () => this.sortBy(c.key),
            onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), this.sortBy(c.key)),
          },
          c.label,
        ),
      ),
    );
    const body = rows.map((r) =>
      h(
        "tr",
        { class: r.trial_id === bestId ? "best" : null, dataset: { trial: r.trial_id } },
        columns.map((c) => h("td", { class: c.num ? "num" : null }, c.show ? c.show(r) : cell(c.value(r)))),
      ),
    );
    clear(this.board, h("div", { class: "table-wrap" }, h("table", { id: "leaderboard-table" }, h("thead", {}, head), h("tbody", {}, body))));
  }

  sortBy(key) {
    this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 };
    this.drawBoard();
  }

  async drawBest() {
    const best = this.sweep.best_trial;
    if (!best) {
      clear(this.best, h("p", { class: "muted", text: "No trial has succeeded yet." }));
      this.bestId = null;
      return;
    }
    if (best.trial_id === this.bestId) return;
    this.bestId = best.trial_id;
    const records = (await api(`/v1/jobs/${encodeURIComponent(best.trial_id)}/metrics`)).items;
    const classification = records.some((r) => r.accuracy != null);
    const [t, v, label] = classification ? ["accuracy", "val_accuracy", "accuracy"] : ["r2", "val_r2", "R²"];
    const loss = new Chart({ id: "best-loss", title: "Loss (train solid, validation dashed)", yLabel: "loss", fit: "down", marker: best.best_epoch, series: [{ label: "train loss", stroke: TRAIN }, { label: "validation loss", stroke: VAL, dash: true }] });
    const score = new Chart({ id: "best-score", title: label === "R²" ? "R²" : "Accuracy", yLabel: label, fit: "up", marker: best.best_epoch, series: [{ label: `train ${label}`, stroke: TRAIN }, { label: `validation ${label}`, stroke: VAL, dash: true }] });
    clear(
      this.best,
      h(
        "p",
        {},
        link(`Trial ${best.index}`, href("jobs", best.trial_id)),
        ` · ${this.sweep.objective.metric} ${num(best.objective)} at epoch ${best.best_epoch} · `,
        Object.entries(best.parameters).map(([k, val]) => `${k} = ${cell(val)}`).join(", "),
      ),
      h("div", { class: "charts" }, loss.el, score.el),
    );
    const x = records.map((r) => r.epoch);
    loss.set(x, [column(records, "train_loss"), column(records, "val_loss")]);
    score.set(x, [column(records, t), column(records, v)]);
  }

  async cancel() {
    try {
      this.sweep = await api(`/v1/sweeps/${encodeURIComponent(this.sweep.id)}/cancel`, { method: "POST" });
      this.drawHead();
    } catch (err) {
      clear(this.problem, errorNotice(err, "Could not cancel the sweep", null));
    }
  }

  start() {
    let first = true;
    every(
      2000,
      async () => {
        if (!first) this.sweep = await api(`/v1/sweeps/${encodeURIComponent(this.sweep.id)}`);
        first = false;
        this.problem.replaceChildren();
        this.drawHead();
        this.drawScatter();
        this.drawBoard();
        await this.drawBest();
        return !TERMINAL.has(this.sweep.status);
      },
      (err) => clear(this.problem, errorNotice(err, "Could not refresh the sweep", null)),
    );
  }
}
