// Jobs: newest first, filtered by status and name, refreshed every two seconds; pick 2-8 to compare.

import { api, every } from "../api.js";
import { badge, clear, clipped, errorNotice, h, href, link, notice, num, percent, setTitle, table, when } from "../dom.js";

const REFRESH_MS = 2000;
const MAX_COMPARE = 8;

export async function render(main, { config, query }) {
  setTitle("Jobs");
  const selected = new Set();
  let status = query.get("status") || "";
  let text = "";
  let limit = 100;
  let items = [];
  let more = false;
  let last = null;

  const statusSelect = h(
    "select",
    {
      id: "status-filter",
      "aria-label": "Status",
      onchange: () => {
        status = statusSelect.value;
        const url = new URL(location.href);
        if (status) url.searchParams.set("status", status);
        else url.searchParams.delete("status");
        history.replaceState(null, "", url);
        refresh();
      },
    },
    h("option", { value: "", text: "All statuses" }),
    config.statuses.map((s) => h("option", { value: s, text: s, selected: s === status })),
  );
  const nameInput = h("input", {
    type: "search",
    id: "name-filter",
    placeholder: "Filter by name or id",
    "aria-label": "Filter by name or id",
    oninput: () => {
      text = nameInput.value.trim().toLowerCase();
      draw();
    },
  });
  const compareButton = h("button", { id: "compare-selected", class: "primary", type: "button", onclick: () => (location.href = `/ui/compare?jobs=${[...selected].map(encodeURIComponent).join(",")}`) });
  const body = h("div", { id: "jobs" });
  const problem = h("div");
  clear(
    main,
    h("div", { class: "row" }, h("h1", { text: "Jobs" }), h("span", { class: "spacer" }), link("New job", "/ui/new", { class: "button" })),
    h("div", { class: "toolbar" }, statusSelect, nameInput, h("span", { class: "spacer" }), compareButton),
    problem,
    body,
  );

  function updateCompare() {
    compareButton.textContent = `Compare selected (${selected.size})`;
    compareButton.disabled = selected.size < 2 || selected.size > MAX_COMPARE;
    compareButton.title = selected.size > MAX_COMPARE ? `Compare at most ${MAX_COMPARE} jobs` : "Pick 2 to 8 jobs";
  }

  function draw() {
    updateCompare();
    const shown = text ? items.filter((j) => j.name.toLowerCase().includes(text) || j.id.toLowerCase().includes(text)) : items;
    if (!items.length) {
      clear(
        body,
        status
          ? notice("info", `No ${status} jobs`, ["Choose another status, or all statuses."])
          : notice("info", "No jobs yet", [h("p", {}, "Start one from ", link("New job", "/ui/new"), ", with the CLI (trainapi jobs submit SPEC.json) or with POST /v1/jobs.")]),
      );
      return;
    }
    if (!shown.length) {
      clear(body, notice("info", "No job matches", [`Nothing named like “${nameInput.value}”. Clear the filter to see every job.`]));
      return;
    }
    const columns = [
      {
        label: "",
        value: (j) =>
          h("input", {
            type: "checkbox",
            "aria-label": `Select ${j.name}`,
            checked: selected.has(j.id),
            dataset: { job: j.id },
            onchange: (e) => {
              if (e.target.checked) selected.add(j.id);
              else selected.delete(j.id);
              updateCompare();
            },
          }),
      },
      // One line: a long name (by default the job id) ends in an ellipsis, whole in its title.
      { label: "Name", class: "name-cell", value: (j) => clipped("a", j.name, { href: href("jobs", j.id), title: j.name === j.id ? j.id : `${j.name}\n${j.id}` }) },
      { label: "Status", value: (j) => badge(j.status) },
      {
        label: "Progress",
        value: (j) =>
          j.status === "queued" && j.queue_position
            ? h("span", { class: "muted", text: `number ${j.queue_position} in the queue` })
            : h("span", { class: "progress-cell" }, h("progress", { max: 1, value: j.progress.fraction }), `${j.progress.epoch}/${j.progress.epochs}`),
      },
      { label: "Best val loss", num: true, value: (j) => num(j.best_metrics?.val_loss ?? j.best_metrics?.train_loss) },
      { label: "Best epoch", num: true, wide: true, value: (j) => num(j.best_epoch) },
      { label: "Test", num: true, value: (j) => (j.test_metrics ? (j.test_metrics.accuracy != null ? percent(j.test_metrics.accuracy) : `r² ${num(j.test_metrics.r2)}`) : "—") },
      { label: "Dataset", wide: true, value: (j) => j.dataset?.name ?? j.spec?.dataset ?? "—" },
      { label: "Created", wide: true, value: (j) => when(j.created_at) },
      { label: "Sweep", wide: true, value: (j) => (j.sweep_id ? link("sweep", href("sweeps", j.sweep_id)) : "") },
    ];
    clear(
      body,
      h("div", { class: "table-wrap" }, table(columns, shown, { rowProps: (j) => ({ dataset: { job: j.id } }) })),
      more ? h("p", {}, h("button", { type: "button", text: "Show more", onclick: () => ((limit = Math.min(limit + 100, 500)), refresh()) })) : null,
    );
  }

  async function load() {
    const params = new URLSearchParams({ limit: String(limit) });
    if (status) params.set("status", status);
    const page = await api(`/v1/jobs?${params}`);
    problem.replaceChildren();
    const seen = JSON.stringify(page);
    if (seen === last) return; // unchanged: keep the table (and the pointer over it) as it is
    last = seen;
    items = page.items;
    more = page.next_cursor != null && limit < 500;
    draw();
  }

  let stop = () => {};
  function refresh() {
    stop();
    stop = every(REFRESH_MS, load, (err) => clear(problem, errorNotice(err, "Could not refresh the jobs")));
  }
  refresh();
}
