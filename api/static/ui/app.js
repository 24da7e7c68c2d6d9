// The app's entry: reads /ui/config.json, asks for an API key when the service has keys,
// then loads the one module of the page the URL names (pages/*.js).

import { api, apiKey, forgetApiKey, onUnauthorized, setApiKey } from "./api.js";
import { clear, errorNotice, h, notice, prose, setTitle } from "./dom.js";

const ROUTES = [
  [/^\/ui\/?$/, "jobs", "jobs"],
  [/^\/ui\/jobs\/?$/, "jobs", "jobs"],
  [/^\/ui\/jobs\/([^/]+)\/?$/, "job", "jobs"],
  [/^\/ui\/new\/?$/, "new", "new"],
  [/^\/ui\/compare\/?$/, "compare", "jobs"],
  [/^\/ui\/sweeps\/?$/, "sweeps", "sweeps"],
  [/^\/ui\/sweeps\/([^/]+)\/?$/, "sweep", "sweeps"],
  [/^\/ui\/datasets\/?$/, "datasets", "datasets"],
];

const main = document.getElementById("main");

function route(pathname) {
  for (const [pattern, page, nav] of ROUTES) {
    const m = pathname.match(pattern);
    if (m) return { page, nav, params: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

function keyPrompt(message) {
  setTitle("API key");
  const input = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off", required: true, placeholder: "tk_…" });
  const status = h("p", { class: "muted small", role: "status" });
  const form = h(
    "form",
    {
      class: "keybox card",
      onsubmit: async (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        setApiKey(key);
        status.textContent = "Checking…";
        try {
          await api("/v1/jobs?limit=1");
          location.reload();
        } catch (err) {
          forgetApiKey();
          status.textContent = err.status === 401 ? "That key was not accepted. Check it and try again." : `Could not check the key: ${err.message}`;
        }
      },
    },
    h("h1", { text: "API key" }),
    h("p", {}, prose(message || "This service needs an API key. Ask its operator for one (they create keys with `trainapi keys add TENANT`).")),
    h("label", { for: "api-key", class: "small muted", text: "Key (kept in this browser tab only)" }),
    input,
    h("button", { class: "primary", type: "submit", text: "Continue" }),
    status,
  );
  clear(main, form);
  input.focus();
}

function session(config) {
  const el = document.getElementById("session");
  if (!config.auth || !apiKey()) return;
  clear(
    el,
    h("span", { class: "small", text: "Signed in with a key" }),
    h("button", {
      type: "button",
      class: "small",
      text: "Forget key",
      onclick: () => {
        forgetApiKey();
        location.reload();
      },
    }),
  );
}

async function start() {
  let config;
  try {
    const response = await fetch("/ui/config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (err) {
    clear(main, errorNotice(err, "The service did not answer"));
    return;
  }
  const where = route(location.pathname);
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (where && a.dataset.nav === where.nav) a.setAttribute("aria-current", "page");
  }
  if (config.auth && !apiKey()) {
    keyPrompt();
    return;
  }
  session(config);
  onUnauthorized(() => {
    forgetApiKey();
    keyPrompt("The key was not accepted (it may have been revoked). Enter a valid key.");
  });
  if (!where) {
    setTitle("Not found");
    clear(main, notice("warn", "No such page", [`Nothing lives at ${location.pathname}.`, h("a", { href: "/ui/", text: "Go to the jobs list" })]));
    return;
  }
  try {
    const page = await import(`./pages/${where.page}.js`);
    await page.render(main, { config, params: where.params, query: new URLSearchParams(location.search) });
  } catch (err) {
    if (err.status === 401) return; // the key prompt is showing
    console.warn(err);
    clear(main, errorNotice(err, "This page could not be loaded"));
  }
}

start();
