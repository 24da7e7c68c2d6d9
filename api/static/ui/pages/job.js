// One job: curves growing live over SSE, best epoch marked, metric table, test metrics, spec,
// downloads of every weights format, cancel.

import { ApiError, api, download, events, every, find } from "../api.js";
import { Chart, TRAIN, VAL, column, metricSeries } from "../charts.js";
import { badge, cell, clear, duration, errorNotice, h, href, idChip, link, notFound, notice, num, percent, setTitle, table, when } from "../dom.js";

const ACTIVE = new Set(["queued", "running", "cancelling"]);
const TABLE_ROWS = 200;
const FIRST_COLUMNS = ["epoch", "train_loss", "val_loss", "accuracy", "val_accuracy", "r2", "val_r2", "mae", "val_mae", "penalty", "learning_rate", "sparsity", "weight_l2_norm", "epoch_seconds", "samples_per_second"];

export async function render(main, { config, params }) {
  const [jobId] = params;
  const job = await find(`/v1/jobs/${encodeURIComponent(jobId)}`);
  if (!job) return notFound(main, "job", jobId, ["Back to the jobs list", "/ui/"]);
  const records = (await api(`/v1/jobs/${encodeURIComponent(jobId)}/metrics`)).items;
  const page = new JobPage(main, job, records, config);
  page.draw();
  if (ACTIVE.has(job.status)) page.follow();
}

class JobPage {
  constructor(main, job, records, config) {
    this.main = main;
    this.job = job;
    this.records = records;
    this.config = config;
    this.head = h("section", { id: "job-head" });
    this.summary = h("section", { id: "job-summary" });
    this.problem = h("div");
    this.tableBox = h("div", { id: "metric-table" });
    this.specBox = h("pre", { id: "job-spec", class: "mono" });
    this.logToggle = h("input", { type: "checkbox", id: "log-scale", onchange: () => this.charts.forEach((c) => c.logable && c.chart.setLog(this.logToggle.checked)) });
    this.makeCharts();
    clear(
      main,
      this.head,
      this.problem,
      this.summary,
      h("div", { class: "toolbar" }, h("h2", { text: "Curves" }), h("span", { class: "spacer" }), h("label", {}, this.logToggle, "Log scale (loss, learning rate)")),
      h("div", { class: "charts" }, this.charts.map((c) => c.chart.el)),
      h("h2", { text: "Metrics per epoch" }),
      this.tableBox,
      h("h2", { text: "Spec" }),
      h("p", { class: "muted small", text: "The normalized spec: every default filled in. POST it to /v1/jobs to train again." }),
      this.specBox,
    );
  }

  makeCharts() {
    const { score } = metricSeries(this.records.length ? this.records : [this.job.latest_metrics || {}]);
    const classification = this.job.dataset?.task === "classification" || score[0] === "accuracy";
    const [trainScore, valScore, scoreLabel] = classification ? ["accuracy", "val_accuracy", "Accuracy"] : ["r2", "val_r2", "R²"];
    // Fitted y-axes (charts.js): the train/validation gap fills the plot, not the first epochs' fall.
    const pair = (id, title, train, val, yLabel, fit) => ({
      keys: [train, val],
      logable: id === "loss-chart",
      chart: new Chart({ id, title, yLabel, fit, series: [{ label: `train ${yLabel}`, stroke: TRAIN }, { label: `validation ${yLabel}`, stroke: VAL, dash: true }] }),
    });
    this.charts = [
      pair("loss-chart", "Loss (train solid, validation dashed)", "train_loss", "val_loss", "loss", "down"),
      pair("score-chart", scoreLabel, trainScore, valScore, scoreLabel.toLowerCase(), "up"),
      { keys: ["learning_rate"], logable: true, chart: new Chart({ id: "lr-chart", title: "Learning rate", yLabel: "learning rate", series: [{ label: "learning rate", stroke: "#009E73" }] }) },
      { keys: ["sparsity"], logable: false, chart: new Chart({ id: "sparsity-chart", title: "Sparsity (fraction of weights exactly 0)", yLabel: "sparsity", yRange: [0, 1], series: [{ label: "sparsity", stroke: "#CC79A7" }] }) },
    ];
  }

  draw() {
    this.drawHead();
    this.drawSummary();
    this.drawCharts();
    this.drawTable();
    this.specBox.textContent = JSON.stringify(this.job.spec, null, 2);
  }

  drawHead() {
    const job = this.job;
    setTitle(job.name, "Job");
    const epochs = job.progress.epochs;
    const done = Math.max(job.progress.epoch, this.records.length ? this.records[this.records.length - 1].epoch : 0);
    // As the service estimates it: the median duration of the last five epochs times the epochs left.
    const recent = this.records.slice(-5).map((r) => r.epoch_seconds).filter((v) => v != null).sort((a, b) => a - b);
    const median = recent.length ? recent[Math.floor(recent.length / 2)] : null;
    const eta = ACTIVE.has(job.status) && median != null ? median * Math.max(epochs - done, 0) : null;
    const downloads = this.config.weight_formats.map((format) =>
      h("button", {
        type: "button",
        class: "download",
        dataset: { format },
        disabled: job.status !== "succeeded",
        title: job.status === "succeeded" ? `Download the weights as ${format}` : "Weights exist once the job has succeeded",
        text: format,
        onclick: () => download(`/v1/jobs/${encodeURIComponent(job.id)}/weights?format=${format}`, `${job.id}.${format}`).catch((err) => this.fail(err, "Download failed")),
      }),
    );
    clear(
      this.head,
      h("div", { class: "row" }, h("h1", { id: "job-name", text: job.name }), badge(job.status)),
      h(
        "div",
        { class: "meta" },
        h("span", { class: "id-field" }, "id ", idChip(job.id)),
        h("span", {}, "dataset ", h("b", { text: job.dataset?.name ?? job.spec?.dataset ?? "—" })),
        h("span", {}, "created ", when(job.created_at)),
        job.started_at ? h("span", {}, "started ", when(job.started_at)) : null,
        job.finished_at ? h("span", {}, "finished ", when(job.finished_at)) : null,
        job.attempt > 1 ? h("span", {}, `attempt ${job.attempt}`) : null,
        job.sweep_id ? h("span", {}, link("its sweep", href("sweeps", job.sweep_id))) : null,
      ),
      h(
        "div",
        { class: "toolbar" },
        h("progress", { id: "job-progress", max: 1, value: epochs ? done / epochs : 0 }),
        h("span", { id: "job-epochs" }, `epoch ${done} / ${epochs}`),
        job.status === "queued" && job.queue_position ? h("span", { class: "muted", id: "queue-position" }, `waiting: number ${job.queue_position} in the queue`) : null,
        eta != null ? h("span", { class: "muted" }, `about ${duration(eta)} left`) : null,
        h("span", { class: "spacer" }),
        h("span", { class: "muted small" }, "Weights:"),
        downloads,
        link("Compare…", `/ui/compare?jobs=${encodeURIComponent(job.id)}`, { class: "button" }),
        h("button", {
          type: "button",
          id: "cancel-job",
          class: "danger",
          text: job.status === "cancelling" ? "Cancelling…" : "Cancel",
          disabled: !["queued", "running"].includes(job.status),
          onclick: () => this.cancel(),
        }),
      ),
    );
  }

  drawSummary() {
    const job = this.job;
    const cards = [];
    if (job.error) cards.push(notice("error", `Failed: ${job.error.type}`, [job.error.message]));
    const best = job.best_metrics;
    const metricOf = (m) => (m ? Object.entries(m).filter(([k]) => !["epoch", "timestamp"].includes(k)) : []);
    cards.push(
      h(
        "div",
        { class: "card", id: "best-epoch" },
        h("h3", { text: "Best epoch" }),
        h("div", { class: "big" }, job.best_epoch != null ? String(job.best_epoch) : "—"),
        best ? h("div", { class: "muted small" }, `val loss ${num(best.val_loss)} · train loss ${num(best.train_loss)}`) : h("div", { class: "muted small", text: "After the first epoch." }),
        job.stopped_early ? h("div", { class: "small", text: `Stopped early (${job.stop_reason || "early stopping"}).` }) : null,
      ),
    );
    const test = job.test_metrics;
    cards.push(
      h(
        "div",
        { class: "card", id: "test-metrics" },
        h("h3", { text: "Test metrics" }),
        test
          ? h("table", {}, h("tbody", {}, metricOf(test).map(([k, v]) => h("tr", {}, h("th", { text: k }), h("td", { class: "num", text: k === "accuracy" ? percent(v) : num(v) })))))
          : h("div", { class: "muted small", text: job.spec?.training?.test_fraction ? "Once the job has succeeded." : "No test split (training.test_fraction is 0)." }),
      ),
    );
    const r = job.spec?.regularization || {};
    cards.push(
      h(
        "div",
        { class: "card" },
        h("h3", { text: "Model and regularization" }),
        h("div", { class: "small" }, `${job.spec?.model?.type ?? "?"} ${job.spec?.model?.type === "mlp" ? cell(job.spec.model.hidden_layers) + " " + job.spec.model.activation : ""}`),
        h("div", { class: "small" }, `l1 ${num(r.l1)} · l2 ${num(r.l2)} · dropout ${cell(r.dropout)} · input dropout ${num(r.input_dropout)}`),
        h("div", { class: "small" }, `${job.spec?.optimizer?.name ?? "?"} lr ${num(job.spec?.optimizer?.learning_rate)} · batch ${num(job.spec?.training?.batch_size)}`),
      ),
    );
    clear(this.summary, h("div", { class: "cards" }, cards));
  }

  drawCharts() {
    const x = this.records.map((r) => r.epoch);
    for (const { keys, chart } of this.charts) {
      chart.set(x, keys.map((k) => column(this.records, k)));
      chart.setMarker(this.job.best_epoch);
    }
  }

  drawTable() {
    if (!this.records.length) {
      clear(this.tableBox, h("p", { class: "muted", text: this.job.status === "queued" ? "Waiting for a worker to start the job." : "No epochs recorded." }));
      return;
    }
    const keys = new Set(Object.keys(this.records[0]));
    const ordered = [...FIRST_COLUMNS.filter((k) => keys.has(k)), ...[...keys].filter((k) => !FIRST_COLUMNS.includes(k) && k !== "timestamp")];
    const columns = ordered.map((k) => ({ label: k, num: true, value: (r) => num(r[k]) }));
    const best = this.job.best_epoch;
    // The newest epochs (and the best one), not thousands of rows redrawn on every epoch.
    const shown = this.records.slice(-TABLE_ROWS).reverse();
    const bestRecord = this.records.find((r) => r.epoch === best);
    if (bestRecord && !shown.includes(bestRecord)) shown.push(bestRecord);
    const notes = [best != null ? `Highlighted: the best epoch (${best}).` : "", "Newest epoch first."];
    if (this.records.length > TABLE_ROWS) notes.push(`The last ${TABLE_ROWS} of ${this.records.length} epochs; GET /v1/jobs/{id}/metrics has them all.`);
    clear(
      this.tableBox,
      h("div", { class: "table-wrap" }, table(columns, shown, { rowProps: (r) => ({ class: r.epoch === best ? "best" : null, dataset: { epoch: String(r.epoch) } }) })),
      h("p", { class: "muted small", text: notes.filter(Boolean).join(" ") }),
    );
  }

  async cancel() {
    try {
      this.job = await api(`/v1/jobs/${encodeURIComponent(this.job.id)}/cancel`, { method: "POST" });
      this.drawHead();
    } catch (err) {
      this.fail(err, "Could not cancel the job");
    }
  }

  fail(err, what) {
    clear(this.problem, errorNotice(err, what, null));
  }

  /** Follow the job's event stream: each epoch redraws the curves; the end event brings the final job. */
  async follow() {
    // Until its first epoch a queued job sends no event: its queue position is read every few seconds.
    every(
      3000,
      async () => {
        if (this.job.status !== "queued") return false;
        const fresh = await api(`/v1/jobs/${encodeURIComponent(this.job.id)}`);
        if (this.job.status === "queued") {
          this.job = fresh;
          this.drawHead();
        }
        return fresh.status === "queued";
      },
      () => {},
    );
    const last = this.records.length ? this.records[this.records.length - 1].epoch : null;
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        this.drawHead();
        this.drawCharts();
        this.drawTable();
      });
    };
    try {
      for await (const message of events(`/v1/jobs/${encodeURIComponent(this.job.id)}/events`, { lastEventId: last })) {
        if (message.event === "epoch") {
          const record = message.data;
          if (this.records.length && record.epoch <= this.records[this.records.length - 1].epoch) continue;
          this.records.push(record);
          if (this.job.status === "queued") this.job.status = "running";
          this.job.progress.epoch = record.epoch;
          redraw();
        } else if (message.event === "end") {
          if (message.data && message.data.id) this.job = message.data;
          else this.job = await api(`/v1/jobs/${encodeURIComponent(this.job.id)}`);
          this.records = (await api(`/v1/jobs/${encodeURIComponent(this.job.id)}/metrics`)).items;
          this.draw();
        }
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      this.fail(err, "Live updates stopped");
    }
  }
}
