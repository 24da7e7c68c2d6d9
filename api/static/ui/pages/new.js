// A new job: a form that starts from the service's defaults (config.job_defaults) and shows,
// live, the JSON body it will POST to /v1/jobs.

import { api } from "../api.js";
import { clear, errorNotice, getPath, h, setPath, setTitle } from "../dom.js";

const number = (path, label, hint, step = "any") => ({ path, label, hint, kind: "number", step });
const FIELDS = [
  ["Job", [
    { path: "name", label: "Name", kind: "text", hint: "Free text; default: the job id." },
    { path: "dataset", label: "Dataset", kind: "dataset" },
    { path: "target", label: "Target column", kind: "text", hint: "Empty: the dataset's own target." },
    { path: "task", label: "Task", kind: "choice" },
  ]],
  ["Model", [
    { path: "model.type", label: "Type", kind: "choice" },
    { path: "model.hidden_layers", label: "Hidden layers", kind: "list", hint: "Units per layer, e.g. 64, 32 (mlp only)." },
    { path: "model.activation", label: "Activation", kind: "choice" },
  ]],
  ["Regularization", [
    number("regularization.l1", "L1", "λ·Σ|w|, a proximal step: weights reach exactly 0."),
    number("regularization.l2", "L2", "λ·Σw²."),
    { path: "regularization.dropout", label: "Dropout", kind: "rates", hint: "Drop probability of hidden units; one number or one per layer." },
    number("regularization.input_dropout", "Input dropout", "Drop probability of input features."),
  ]],
  ["Table columns", [
    { path: "preprocessing.impute_numeric", label: "Numeric gaps", kind: "choice", hint: "Fill value fitted on the train split." },
    { path: "preprocessing.impute_categorical", label: "Text gaps", kind: "choice" },
    { path: "preprocessing.categorical", label: "Text columns", kind: "choice" },
  ]],
  ["Optimizer", [
    { path: "optimizer.name", label: "Optimizer", kind: "choice" },
    number("optimizer.learning_rate", "Learning rate"),
    { path: "lr_schedule.name", label: "LR schedule", kind: "choice" },
  ]],
  ["Training", [
    number("training.epochs", "Epochs", null, "1"),
    number("training.batch_size", "Batch size", null, "1"),
    number("training.validation_fraction", "Validation fraction"),
    number("training.test_fraction", "Test fraction", "Held out; its metrics are reported when the job ends."),
    number("training.seed", "Seed", "Same spec and seed: identical weights.", "1"),
    { path: "training.early_stopping", label: "Early stopping", kind: "early" },
  ]],
];

export async function render(main, { config, query }) {
  setTitle("New job");
  const spec = structuredClone(config.job_defaults);
  spec.name = null;
  const datasets = (await api("/v1/datasets")).items;
  const wanted = query.get("dataset");
  spec.dataset = datasets.some((d) => d.id === wanted) ? wanted : (datasets.find((d) => d.id === "moons") || datasets[0])?.id ?? "";
  const preview = h("pre", { id: "job-json", class: "mono" });
  const problem = h("div", { id: "job-problem" });
  const fields = new Map();

  function body() {
    // Empty optional text fields are left out, so the service applies its own defaults.
    const out = structuredClone(spec);
    for (const key of ["name", "target"]) if (!out[key]) delete out[key];
    return out;
  }
  const refresh = () => (preview.textContent = JSON.stringify(body(), null, 2));

  function control(field) {
    const value = getPath(spec, field.path);
    const id = `f-${field.path.replace(/\./g, "-")}`;
    const set = (v) => {
      setPath(spec, field.path, v);
      refresh();
    };
    switch (field.kind) {
      case "text":
        return h("input", { id, type: "text", value: value ?? "", oninput: (e) => set(e.target.value.trim() || null) });
      case "number":
        return h("input", { id, type: "number", step: field.step, value: String(value), oninput: (e) => set(e.target.value === "" ? null : Number(e.target.value)) });
      case "dataset":
        return h(
          "select",
          { id, onchange: (e) => set(e.target.value) },
          datasets.map((d) => h("option", { value: d.id, selected: d.id === value, text: d.source === "upload" ? `${d.name} (${d.id})` : d.name })),
        );
      case "choice":
        return h("select", { id, onchange: (e) => set(e.target.value) }, (config.job_choices[field.path] || [value]).map((c) => h("option", { value: c, selected: c === value, text: c })));
      case "list":
        return h("input", { id, type: "text", value: (value || []).join(", "), oninput: (e) => set(e.target.value.split(",").map((s) => s.trim()).filter(Boolean).map(Number)) });
      case "rates":
        return h("input", {
          id,
          type: "text",
          value: Array.isArray(value) ? value.join(", ") : String(value),
          oninput: (e) => {
            const parts = e.target.value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
            set(parts.length === 1 ? parts[0] : parts);
          },
        });
      case "early": {
        const patience = h("input", { type: "number", step: "1", min: "1", value: String(value?.patience ?? 10), "aria-label": "Patience (epochs)", disabled: !value });
        const on = h("input", { id, type: "checkbox", checked: !!value });
        const sync = () => {
          patience.disabled = !on.checked;
          set(on.checked ? { monitor: "val_loss", patience: Number(patience.value) || 10, min_delta: 0, restore_best: true } : null);
        };
        on.addEventListener("change", sync);
        patience.addEventListener("input", sync);
        return h("span", { class: "row" }, h("label", {}, on, "on val_loss"), h("label", {}, "patience", patience));
      }
      default:
        throw new Error(`unknown field kind ${field.kind}`);
    }
  }

  const form = h(
    "form",
    { id: "new-job", novalidate: true, onsubmit: (e) => (e.preventDefault(), submit()) },
    FIELDS.map(([legend, list]) =>
      h(
        "fieldset",
        {},
        h("legend", { text: legend }),
        list.map((field) => {
          const input = control(field);
          const error = h("div", { class: "error", role: "alert" });
          const row = h("div", { class: "field", dataset: { field: field.path } }, h("label", { for: input.id || null, text: field.label }), input, field.hint ? h("div", { class: "hint", text: field.hint }) : null, error);
          fields.set(field.path, { row, error });
          return row;
        }),
      ),
    ),
    h("p", {}, h("button", { class: "primary", type: "submit", id: "submit-job", text: "Start training" })),
  );

  async function submit() {
    for (const { row, error } of fields.values()) {
      row.classList.remove("invalid");
      error.textContent = "";
    }
    problem.replaceChildren();
    const button = form.querySelector("#submit-job");
    button.disabled = true;
    try {
      const job = await api("/v1/jobs", { method: "POST", json: body(), headers: { "Idempotency-Key": crypto.randomUUID() } });
      location.href = `/ui/jobs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      button.disabled = false;
      let placed = false;
      for (const e of err.errors || []) {
        const path = [...fields.keys()].find((p) => e.field === p || e.field.startsWith(p + "."));
        if (!path) continue;
        fields.get(path).row.classList.add("invalid");
        fields.get(path).error.textContent = e.message;
        placed = true;
      }
      clear(problem, errorNotice(err, placed ? "Fix the marked fields" : "The job was not accepted", null));
    }
  }

  refresh();
  clear(
    main,
    h("h1", { text: "New job" }),
    h("p", { class: "muted", text: "Every field starts at the service's default. The JSON on the right is exactly what is sent to POST /v1/jobs." }),
    problem,
    h("div", { class: "form-grid" }, form, h("div", { class: "sticky" }, h("h3", { text: "Request body" }), preview)),
  );
}
