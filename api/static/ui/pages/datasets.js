// Datasets: the built-ins and this key's uploads; upload by drag and drop or the file input;
// the first rows of any dataset.

import { ApiError, api } from "../api.js";
import { cell, clear, clipped, errorNotice, h, idChip, link, notice, num, setTitle, table, when } from "../dom.js";

const ROWS = 10;
/** The typed column summaries of an uploaded table (numeric: range and mean; categorical: its commonest levels). */
const COLUMN_SUMMARY = [
  { label: "Column", value: (c) => c.name },
  { label: "Type", value: (c) => c.type },
  { label: "Missing", num: true, value: (c) => num(c.missing) },
  { label: "Min", num: true, value: (c) => num(c.min) },
  { label: "Mean", num: true, value: (c) => num(c.mean) },
  { label: "Max", num: true, value: (c) => num(c.max) },
  { label: "Distinct", num: true, value: (c) => num(c.distinct) },
  { label: "Commonest", value: (c) => (c.top || []).map((t) => `${cell(t.level)} (${t.count})`).join(", ") },
];

/** What the parser did that the uploader should know (a column left out because it was empty…): the record's `notes`. */
function notes(ds) {
  if (!ds.notes?.length) return null;
  return h("div", { class: "dataset-notes" }, h("b", { text: "Notes" }), h("ul", {}, ds.notes.map((n) => h("li", { text: n }))));
}

export async function render(main, { query }) {
  setTitle("Datasets");
  const listBox = h("div", { id: "dataset-list" });
  const rowsBox = h("section", { id: "dataset-rows" });
  const result = h("div", { id: "upload-result", "aria-live": "polite" });
  const target = h("input", { type: "text", id: "upload-target", name: "target", placeholder: "last column" });
  const name = h("input", { type: "text", id: "upload-name", name: "name", placeholder: "the file name" });
  // "detect" sends no decimal field: the service decides (a semicolon file may use decimal commas).
  const decimal = h(
    "select",
    { id: "upload-decimal", name: "decimal" },
    h("option", { value: "", text: "detect", selected: true }),
    h("option", { value: ".", text: "1.5 (point)" }),
    h("option", { value: ",", text: "1,5 (comma)" }),
  );
  const fileInput = h("input", { type: "file", id: "upload-file", accept: ".csv,.npz,text/csv,application/octet-stream", onchange: () => fileInput.files[0] && upload(fileInput.files[0]) });
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone" },
    h("p", {}, h("b", { text: "Drop a CSV or NPZ file here" }), " or choose one: "),
    fileInput,
    h("p", { class: "muted small", text: "CSV: a header row; comma, semicolon, tab or pipe separated; text columns and empty cells are fine. NPZ: arrays X and y." }),
  );
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer?.files?.[0];
    if (file) upload(file);
  });

  clear(
    main,
    h("h1", { text: "Datasets" }),
    h(
      "section",
      { class: "card" },
      h("h3", { text: "Upload" }),
      h("div", { class: "upload-fields" }, h("label", {}, "Target column ", target), h("label", {}, "Name ", name), h("label", {}, "Decimals ", decimal)),
      zone,
      result,
    ),
    h("h2", { text: "All datasets" }),
    listBox,
    rowsBox,
  );

  async function upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    if (target.value.trim()) form.append("target", target.value.trim());
    if (name.value.trim()) form.append("name", name.value.trim());
    if (decimal.value) form.append("decimal", decimal.value);
    clear(result, h("p", { class: "muted", text: `Uploading ${file.name}…` }));
    try {
      const ds = await api("/v1/datasets", { method: "POST", body: form });
      clear(
        result,
        notice("info", `Uploaded “${ds.name}”`, [
          `${ds.n_samples} rows × ${ds.n_features} features; target ${ds.target_name}; task ${ds.task ?? "unknown"}${ds.classes ? ` (classes ${ds.classes.map(cell).join(", ")})` : ""}.`,
          notes(ds),
          h("p", { class: "row" }, link("Train a model on it", `/ui/new?dataset=${encodeURIComponent(ds.id)}`, { class: "button primary", id: "train-uploaded" }), idChip(ds.id)),
        ]),
      );
      await list();
      await showRows(ds.id);
    } catch (err) {
      clear(result, errorNotice(err, `Could not upload ${file.name}`, null));
    } finally {
      fileInput.value = "";
    }
  }

  async function remove(ds) {
    if (!confirm(`Delete the dataset “${ds.name}”? Jobs trained on it keep their weights.`)) return;
    try {
      await api(`/v1/datasets/${encodeURIComponent(ds.id)}`, { method: "DELETE" });
      rowsBox.replaceChildren();
      await list();
    } catch (err) {
      clear(result, errorNotice(err, `Could not delete ${ds.name}`, null));
    }
  }

  async function showRows(id) {
    clear(rowsBox, h("p", { class: "muted", text: "Loading the first rows…" }));
    try {
      const [ds, head] = await Promise.all([api(`/v1/datasets/${encodeURIComponent(id)}`), api(`/v1/datasets/${encodeURIComponent(id)}/rows?limit=${ROWS}`)]);
      const columns = head.columns.map((c, i) => ({ label: i === head.columns.length - 1 ? `${c} (target)` : c, num: true, value: (row) => cell(row[i]) }));
      clear(
        rowsBox,
        h("h2", { text: `First rows of ${ds.name}` }),
        h("p", { class: "muted small", text: `${head.rows.length} of ${head.n_samples} rows. ${ds.description ?? ""}` }),
        notes(ds),
        h("div", { class: "table-wrap" }, table(columns, head.rows)),
        ds.columns?.length ? [h("h3", { class: "spaced", text: "Columns" }), h("div", { class: "table-wrap", id: "dataset-columns" }, table(COLUMN_SUMMARY, ds.columns))] : null,
      );
      const url = new URL(location.href);
      url.searchParams.set("id", id);
      history.replaceState(null, "", url);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) clear(rowsBox, notice("warn", "No such dataset", [`There is no dataset ${id} for this key.`]));
      else clear(rowsBox, errorNotice(err, "Could not load the rows", null));
    }
  }

  async function list() {
    const { items } = await api("/v1/datasets");
    const columns = [
      { label: "Name", class: "name-cell", value: (d) => clipped("button", d.name, { type: "button", class: "linkish", title: `${d.name}: show the first rows`, onclick: () => showRows(d.id) }) },
      { label: "Source", wide: true, value: (d) => d.source },
      { label: "Rows", num: true, value: (d) => num(d.n_samples) },
      { label: "Features", num: true, value: (d) => num(d.n_features) },
      { label: "Task", wide: true, value: (d) => d.task ?? "—" },
      { label: "Target", value: (d) => d.target_name },
      { label: "Added", wide: true, value: (d) => (d.created_at ? when(d.created_at) : "built in") },
      {
        label: "",
        value: (d) =>
          h(
            "span",
            { class: "actions" },
            h("button", { type: "button", text: "First rows", onclick: () => showRows(d.id) }),
            link("Train", `/ui/new?dataset=${encodeURIComponent(d.id)}`, { class: "button" }),
            d.source === "upload" ? h("button", { type: "button", class: "danger", text: "Delete", onclick: () => remove(d) }) : null,
          ),
      },
    ];
    const uploads = items.filter((d) => d.source === "upload").length;
    clear(
      listBox,
      uploads ? null : h("p", { class: "muted", text: "No uploads yet: the built-in datasets are listed; upload your own above." }),
      h("div", { class: "table-wrap" }, table(columns, items, { rowProps: (d) => ({ dataset: { dataset: d.id } }) })),
    );
  }

  await list();
  if (query.get("id")) await showRows(query.get("id"));
}
