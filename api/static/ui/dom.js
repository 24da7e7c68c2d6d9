// Building the page. Every string goes in as text (textContent / text nodes), never as HTML:
// job names, dataset names, column names and error messages are user text.

/**
 * h("a", {href, class, text, onclick}, ...children): an element. Props: `class`, `text`
 * (textContent), `on<event>` (listener), `dataset` (object), properties that the element has
 * (checked, disabled, value...), else attributes. Children: nodes or strings (as text).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "style") throw new Error("inline style attributes are blocked by the CSP; use el.style");
    else if (typeof value !== "string" && name in el) el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

/** A link to a page of the app; `parts` are encoded path segments. */
export function href(...parts) {
  return "/ui/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function link(text, url, props = {}) {
  return h("a", { href: url, ...props }, text);
}

/**
 * Help text with `code` spans: the text between backticks becomes a <code> element (as text, like
 * everything else), the rest text nodes. An unpaired backtick stays as it is.
 */
export function prose(text) {
  const parts = String(text).split(/`([^`]+)`/);
  return parts.map((part, i) => (i % 2 ? h("code", { text: part }) : part)).filter((part) => part !== "");
}

/** A name or id that stays on one line: cut with an ellipsis where it does not fit, whole in its title. */
export function clipped(tag, text, props = {}) {
  return h(tag, { ...props, class: ["clip", props.class].filter(Boolean).join(" "), title: props.title ?? String(text), text });
}

/** Put `text` on the clipboard: the Clipboard API where the page may use it (https, localhost), else a selection and execCommand. */
export async function copyText(text, from) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { readonly: true, class: "offscreen", text });
  (from || document.body).append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("the browser did not copy");
}

/** An id: one line in code (an ellipsis and the whole id in its title where it does not fit) and a copy button. */
export function idChip(id) {
  const button = h("button", { type: "button", class: "copy", title: "Copy the id", "aria-label": `Copy ${id}`, text: "Copy" });
  const chip = h("span", { class: "id-chip" }, clipped("code", id), button);
  button.addEventListener("click", async () => {
    try {
      await copyText(id, chip);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select it";
    }
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return chip;
}

export function badge(status) {
  const safe = /^[a-z]+$/.test(status) ? status : "unknown";
  return h("span", { class: `badge s-${safe}`, dataset: { status: safe } }, status);
}

/** A notice: kind "info" | "error" | "warn"; `body` strings or nodes; optional action button. */
export function notice(kind, title, body = [], action = null) {
  return h(
    "div",
    { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("h3", { text: title }),
    [body].flat().filter((b) => b != null).map((b) => (b instanceof Node ? b : h("p", { text: b }))),
    action ? h("p", {}, h("button", { onclick: action.run }, action.label)) : null,
  );
}

/** The page of a resource that does not exist for this key: say so, and link back to its list. */
export function notFound(main, kind, id, [backText, backHref]) {
  setTitle(`${kind[0].toUpperCase()}${kind.slice(1)} not found`);
  clear(main, notice("warn", `No such ${kind}`, [`There is no ${kind} ${id} for this key.`, "Check the id, or the key you signed in with.", h("a", { href: backHref, text: backText })]));
}

/** An error notice for an ApiError (or any error): its title, detail and field errors. */
export function errorNotice(err, what = "Something went wrong", action = { label: "Retry", run: () => location.reload() }) {
  const body = [];
  if (err && err.status === 0) body.push(err.detail);
  else if (err && err.status) body.push(`${err.title} (HTTP ${err.status})${err.detail ? ": " + err.detail : ""}`);
  else body.push(String(err && err.message ? err.message : err));
  if (err && err.errors && err.errors.length) {
    body.push(h("ul", {}, err.errors.map((e) => h("li", {}, h("code", { text: e.field }), " ", e.message))));
  }
  return notice("error", what, body, action);
}

export function setTitle(...parts) {
  document.title = [...parts.filter(Boolean), "trainapi"].join(" · ");
}

// ---- numbers and times

export function num(value, digits = 4) {
  if (value == null || value === "") return "—";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

export function percent(value) {
  return value == null ? "—" : `${(100 * value).toFixed(1)} %`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** A compact value for a table cell: numbers formatted, lists joined, objects as JSON. */
export function cell(value) {
  if (Array.isArray(value)) return `[${value.map(cell).join(", ")}]`;
  if (value && typeof value === "object") return JSON.stringify(value);
  if (typeof value === "boolean") return String(value);
  return num(value);
}

/**
 * A table; columns: [{label, value(row) -> string|Node, num?, class?, wide?}]. `wide` columns are
 * left out on narrow screens (app.css); the table scrolls sideways in its .table-wrap.
 */
export function table(columns, rows, { rowProps = () => ({}) } = {}) {
  const classes = (c, own) => [c.num ? "num" : "", c.wide ? "wide" : "", own || ""].join(" ").trim() || null;
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: classes(c), scope: "col" }, c.label)))),
    h(
      "tbody",
      {},
      rows.map((row) => h("tr", rowProps(row), columns.map((c) => h("td", { class: classes(c, c.class) }, c.value(row))))),
    ),
  );
}

/** The value at a dotted path of an object ("regularization.l2"). */
export function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

export function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (o[k] == null || typeof o[k] !== "object") o[k] = {};
    o = o[k];
  }
  o[keys[keys.length - 1]] = value;
}
