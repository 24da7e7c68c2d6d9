// Sweeps: newest first, with their progress and best objective.

import { api, every } from "../api.js";
import { badge, clear, clipped, errorNotice, h, href, notice, num, prose, setTitle, table, when } from "../dom.js";

export async function render(main) {
  setTitle("Sweeps");
  const body = h("div", { id: "sweeps" });
  const problem = h("div");
  clear(main, h("h1", { text: "Sweeps" }), h("p", { class: "muted", id: "sweeps-help" }, prose("A sweep trains many jobs over a search space and ranks them. Start one with `POST /v1/sweeps` or `trainapi sweeps submit SPEC.json`.")), problem, body);
  let last = null;
  every(
    3000,
    async () => {
      const { items } = await api("/v1/sweeps?limit=100");
      problem.replaceChildren();
      const seen = JSON.stringify(items);
      if (seen === last) return;
      last = seen;
      if (!items.length) {
        clear(body, notice("info", "No sweeps yet", ["Submit one through the API; it appears here with its leaderboard."]));
        return;
      }
      const done = (s) => Object.entries(s.counts).filter(([k]) => !["queued", "running", "cancelling"].includes(k)).reduce((n, [, v]) => n + v, 0);
      clear(
        body,
        h(
          "div",
          { class: "table-wrap" },
          table(
            [
              { label: "Name", class: "name-cell", value: (s) => clipped("a", s.name, { href: href("sweeps", s.id) }) },
              { label: "Status", value: (s) => badge(s.status) },
              { label: "Strategy", wide: true, value: (s) => s.strategy },
              { label: "Objective", wide: true, value: (s) => `${s.objective.metric} (${s.objective.mode})` },
              { label: "Trials done", num: true, value: (s) => `${done(s)} / ${s.n_trials}` },
              { label: "Best", num: true, value: (s) => num(s.best_trial?.objective) },
              { label: "Created", wide: true, value: (s) => when(s.created_at) },
            ],
            items,
          ),
        ),
      );
    },
    (err) => clear(problem, errorNotice(err, "Could not load the sweeps", null)),
  );
}
