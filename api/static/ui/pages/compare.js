// Compare 2-8 jobs: their curves overlaid (one colour per job; train solid, validation dashed)
// and the settings in which they differ — the picture of over-fitting with and without dropout or L2.

import { api, every, find } from "../api.js";
import { Chart, JOB_COLOURS } from "../charts.js";
import { badge, cell, clear, clipped, errorNotice, getPath, h, href, link, notice, num, percent, setTitle, table } from "../dom.js";

const MIN = 2;
const MAX = 8;
const ACTIVE = new Set(["queued", "running", "cancelling"]);

export async function render(main, { query }) {
  setTitle("Compare");
  const ids = [...new Set((query.get("jobs") || "").split(",").map((s) => s.trim()).filter(Boolean))];
  if (ids.length < MIN || ids.length > MAX) {
    await picker(main, ids);
    return;
  }
  const jobs = [];
  const missing = [];
  for (const id of ids) {
    const job = await find(`/v1/jobs/${encodeURIComponent(id)}`);
    if (job) jobs.push(job);
    else missing.push(id);
  }
  if (missing.length) {
    clear(main, h("h1", { text: "Compare jobs" }), notice("warn", "Some jobs were not found", [`No job ${missing.join(", ")} for this key.`, h("a", { href: "/ui/compare", text: "Pick the jobs again" })]));
    return;
  }
  new ComparePage(main, jobs).start();
}

/** Fewer than 2 or more than 8 ids: pick from the recent jobs. */
async function picker(main, ids) {
  const chosen = new Set(ids);
  const jobs = (await api("/v1/jobs?limit=100")).items;
  const go = h("button", { class: "primary", id: "compare-go", type: "button", text: "Compare", onclick: () => (location.href = `/ui/compare?jobs=${[...chosen].map(encodeURIComponent).join(",")}`) });
  const update = () => (go.disabled = chosen.size < MIN || chosen.size > MAX);
  update();
  clear(
    main,
    h("h1", { text: "Compare jobs" }),
    ids.length > MAX ? notice("warn", "Too many jobs", [`Compare at most ${MAX} jobs at once; ${ids.length} were given.`]) : null,
    h("p", { class: "muted", text: `Pick ${MIN} to ${MAX} jobs: their loss and accuracy (or R²) curves are drawn on one chart.` }),
    jobs.length
      ? h(
          "div",
          { class: "table-wrap" },
          table(
            [
              { label: "", value: (j) => h("input", { type: "checkbox", "aria-label": `Select ${j.name}`, checked: chosen.has(j.id), onchange: (e) => (e.target.checked ? chosen.add(j.id) : chosen.delete(j.id), update()) }) },
              { label: "Name", class: "name-cell", value: (j) => clipped("a", j.name, { href: href("jobs", j.id) }) },
              { label: "Status", value: (j) => badge(j.status) },
              { label: "Dataset", value: (j) => j.dataset?.name ?? "—" },
            ],
            jobs,
          ),
        )
      : notice("info", "No jobs yet", [h("p", {}, "Start two from ", link("New job", "/ui/new"), " and compare them here.")]),
    h("p", {}, go),
  );
}

/** The spec paths whose values differ between the jobs (what the comparison is about). */
function differences(jobs) {
  const paths = [];
  const walk = (value, prefix) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const k of Object.keys(value)) walk(value[k], prefix ? `${prefix}.${k}` : k);
    } else paths.push(prefix);
  };
  for (const job of jobs) walk(job.spec, "");
  const unique = [...new Set(paths)].filter((p) => p !== "name");
  return unique.filter((p) => new Set(jobs.map((j) => JSON.stringify(getPath(j.spec, p) ?? null))).size > 1);
}

class ComparePage {
  constructor(main, jobs) {
    this.jobs = jobs;
    this.metrics = new Map();
    this.colours = new Map(jobs.map((j, i) => [j.id, JOB_COLOURS[i]]));
    const classification = jobs.every((j) => j.dataset?.task === "classification");
    this.score = classification ? ["accuracy", "val_accuracy", "accuracy"] : ["r2", "val_r2", "R²"];
    const series = (what) =>
      jobs.flatMap((j) => [
        { label: `${j.name} · train ${what}`, stroke: this.colours.get(j.id), job: j.id, split: "train" },
        { label: `${j.name} · validation ${what}`, stroke: this.colours.get(j.id), dash: true, job: j.id, split: "val" },
      ]);
    this.loss = new Chart({ id: "compare-loss", title: "Loss (train solid, validation dashed)", yLabel: "loss", series: series("loss"), height: 300, fit: "down" });
    this.scoreChart = new Chart({ id: "compare-score", title: this.score[2] === "accuracy" ? "Accuracy" : "R²", yLabel: this.score[2], series: series(this.score[2]), height: 300, fit: "up" });
    this.logToggle = h("input", { type: "checkbox", id: "log-scale", onchange: () => this.loss.setLog(this.logToggle.checked) });
    this.legend = h("div", { id: "compare-jobs" });
    this.problem = h("div");
    setTitle(`${jobs.length} jobs`, "Compare");
    clear(
      main,
      h("div", { class: "row" }, h("h1", { text: `Compare ${jobs.length} jobs` }), h("span", { class: "spacer" }), h("label", {}, this.logToggle, "Log scale (loss)")),
      this.problem,
      this.legend,
      h("div", { class: "charts" }, this.loss.el, this.scoreChart.el),
    );
  }

  drawLegend() {
    const diff = differences(this.jobs);
    const columns = [
      { label: "Job", class: "name-cell", value: (j) => h("span", { class: "swatched" }, h("span", { class: "swatch", dataset: { colour: this.colours.get(j.id) } }), clipped("a", j.name, { href: href("jobs", j.id) })) },
      { label: "Status", value: (j) => badge(j.status) },
      { label: "Best epoch", num: true, value: (j) => num(j.best_epoch) },
      { label: "Best val loss", num: true, value: (j) => num(j.best_metrics?.val_loss) },
      { label: "Test", num: true, value: (j) => (j.test_metrics ? (j.test_metrics.accuracy != null ? percent(j.test_metrics.accuracy) : num(j.test_metrics.r2)) : "—") },
      ...diff.slice(0, 8).map((p) => ({ label: p, value: (j) => cell(getPath(j.spec, p)) })),
    ];
    const t = table(columns, this.jobs, { rowProps: (j) => ({ dataset: { job: j.id } }) });
    for (const swatch of t.querySelectorAll(".swatch")) swatch.style.backgroundColor = swatch.dataset.colour;
    clear(
      this.legend,
      h("div", { class: "table-wrap" }, t),
      h("p", { class: "muted small", text: diff.length ? `Columns after “Test”: the settings in which these jobs differ${diff.length > 8 ? " (first 8)" : ""}.` : "These jobs have the same settings." }),
    );
  }

  drawCharts() {
    const longest = Math.max(0, ...[...this.metrics.values()].map((r) => (r.length ? r[r.length - 1].epoch : 0)));
    const x = Array.from({ length: longest }, (_, i) => i + 1);
    const aligned = (records, key) => {
      const byEpoch = new Map(records.map((r) => [r.epoch, r[key]]));
      return x.map((e) => byEpoch.get(e) ?? null);
    };
    const ys = (train, val) => this.jobs.flatMap((j) => [aligned(this.metrics.get(j.id) || [], train), aligned(this.metrics.get(j.id) || [], val)]);
    this.loss.set(x, ys("train_loss", "val_loss"));
    this.scoreChart.set(x, ys(this.score[0], this.score[1]));
  }

  async load() {
    const active = this.jobs.filter((j) => ACTIVE.has(j.status) || !this.metrics.has(j.id));
    for (const job of active) {
      const fresh = ACTIVE.has(job.status) ? await api(`/v1/jobs/${encodeURIComponent(job.id)}`) : job;
      Object.assign(job, fresh);
      this.metrics.set(job.id, (await api(`/v1/jobs/${encodeURIComponent(job.id)}/metrics`)).items);
    }
    this.problem.replaceChildren();
    if (active.length) {
      this.drawLegend();
      this.drawCharts();
    }
    return this.jobs.some((j) => ACTIVE.has(j.status)); // keep polling while any job trains
  }

  start() {
    this.drawLegend();
    every(2000, () => this.load(), (err) => clear(this.problem, errorNotice(err, "Could not refresh the jobs", null)));
  }
}
