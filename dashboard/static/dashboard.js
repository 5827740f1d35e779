// autopeft dashboard: fills the page shells from the JSON API and polls it for live updates.
// Text from the DB (study names, plan fields, error messages) only ever goes into textContent.
"use strict";

const body = document.body;
const POLL_MS = Math.max(1, Number(body.dataset.poll || 3)) * 1000;
const main = document.getElementById("main");
const plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replaceChildren without the null/undefined placeholders of optional parts
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

const fmt = {
  metric: (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(4)),
  pct: (v) => (v === null || v === undefined ? "–" : `${Number(v).toPrecision(3)}%`),
  int: (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US")),
  num: (v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(4)),
  secs: (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(1)} s`),
  time: (v) => (v ? v.replace("T", " ") : "–"),
};

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-cache", headers: { Accept: "application/json" } });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function showError(error) {
  fill(main, el("div", { class: "card error" }, el("h2", {}, "Cannot show this page"), el("p", {}, error.message)));
}

function setLive(ok) {
  const live = document.getElementById("live");
  live.textContent = ok ? "live" : "offline";
  live.className = ok ? "live on" : "live off";
}

function poll(fn) {
  const tick = async () => {
    try { await fn(); setLive(true); } catch (error) { setLive(false); }
  };
  setInterval(tick, POLL_MS);
}

const studyUrl = (id) => `/studies/${encodeURIComponent(id)}`;
const trialUrl = (id, n) => `/studies/${encodeURIComponent(id)}/trials/${encodeURIComponent(n)}`;

function stateBadges(states) {
  const order = ["complete", "running", "waiting", "fail", "pruned"];
  return el("span", { class: "badges" }, order.filter((s) => states[s]).map((s) => el("span", { class: `badge ${s}` }, `${states[s]} ${s}`)));
}

function modelName(model) {
  const parts = String(model).split("/").filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(model);
}

// --- Studies page ----------------------------------------------------------------------------
// The metric's direction, as the summary says it: "↑" (maximised) or "↓" (minimised).
const arrow = (s) => (s.direction === "minimize" ? "↓" : "↑");

async function studiesPage() {
  const render = (studies) => {
    const rows = studies.map((s) => el("tr", {},
      el("td", {}, el("a", { href: studyUrl(s.study_id), class: "strong" }, s.name),
        (s.refinements || []).length ? el("span", { class: "badge refined", title: `refined by autopeft refine: ${s.refinements.join(", ")}` }, "refined") : null),
      el("td", { title: s.model, class: "nowrap" }, modelName(s.model)),
      el("td", {}, s.task),
      el("td", {}, s.space),
      el("td", {}, stateBadges(s.states)),
      el("td", { class: "num", title: `${s.metric} ${arrow(s)}` }, s.best_trial === null ? "–" : el("a", { href: trialUrl(s.study_id, s.best_trial) }, fmt.metric(s.best_metric)), el("span", { class: "muted" }, ` ${s.metric} ${arrow(s)}`)),
      el("td", { class: "num" }, fmt.num(s.hypervolume)),
      el("td", { class: "num" }, s.pareto_size),
      el("td", { class: "nowrap" }, fmt.time(s.last_update))));
    const table = studies.length
      ? el("table", { class: "table" },
        el("thead", {}, el("tr", {}, ["study", "model", "task", "space", "trials", "best metric ≤ budget", "hypervolume", "front", "last update"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "muted" }, "No autopeft studies in this database yet. Start one with `autopeft search spec.yaml`.");
    fill(main, el("h1", {}, "Studies"), el("div", { class: "card" }, table));
  };
  render(await getJSON("/api/studies"));
  poll(async () => render(await getJSON("/api/studies")));
}

// --- Study page ------------------------------------------------------------------------------
function stat(label, value, extra) {
  return el("div", { class: "stat" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), extra || null);
}

function studyHeader(s) {
  return el("div", { class: "page-head" },
    el("div", {}, el("h1", {}, s.name),
      el("p", { class: "muted" }, `${modelName(s.model)} · ${s.task} · space ${s.space} · metric ${s.metric} ${arrow(s)} (${s.direction === "minimize" ? "lower" : "higher"} is better)`)),
    el("div", { class: "stats" },
      stat("trials", fmt.int(s.trials), stateBadges(s.states)),
      stat("best ≤ budget", s.best_trial === null ? "–" : el("a", { href: trialUrl(s.study_id, s.best_trial) }, fmt.metric(s.best_metric))),
      stat("Pareto front", `${s.pareto_size}`),
      stat("hypervolume", fmt.num(s.hypervolume)),
      stat("budget", s.budget_pct === null ? "none" : `${s.budget_pct}%`)));
}

// the family registry's names, in its order (search_spaces/families), from the page shell
const FAMILIES = (body.dataset.families || "").split(",").filter(Boolean);
const STATES = ["complete", "running", "waiting", "fail", "pruned"];

function trialsTable(studyId, onChange) {
  const query = { sort: "number", order: "asc", offset: 0, limit: 25 };
  const filters = {};
  const tbody = el("tbody");
  const info = el("span", { class: "muted" });
  const prev = el("button", { type: "button", onclick: () => { query.offset = Math.max(0, query.offset - query.limit); load(); } }, "‹ prev");
  const next = el("button", { type: "button", onclick: () => { query.offset += query.limit; load(); } }, "next ›");
  const columns = [["number", "#"], ["state", "state"], ["metric", "metric"], ["params_pct", "params %"], ["params", "params"], [null, "plan"], [null, "device · peak memory"]];
  const heads = columns.map(([key, label]) => {
    const th = el("th", { class: key ? "sortable" : "" }, label);
    if (key) th.addEventListener("click", () => {
      query.order = query.sort === key && query.order === "asc" ? "desc" : "asc";
      query.sort = key; query.offset = 0; load();
    });
    th.dataset.key = key || "";
    return th;
  });
  const select = (name, options) => el("select", { "aria-label": name, onchange: (e) => { filters[name] = e.target.value; query.offset = 0; load(); } },
    el("option", { value: "" }, `any ${name}`), options.map((o) => el("option", { value: o }, o)));
  const number = (name, placeholder) => el("input", { type: "number", step: "any", placeholder, "aria-label": placeholder,
    onchange: (e) => { filters[name] = e.target.value; query.offset = 0; load(); } });
  const paretoBox = el("input", { type: "checkbox", onchange: (e) => { filters.pareto = e.target.checked ? "true" : ""; query.offset = 0; load(); } });
  const controls = el("div", { class: "filters" },
    select("state", STATES), select("family", FAMILIES),
    number("min_metric", "metric ≥"), number("max_metric", "metric ≤"),
    number("min_params_pct", "params % ≥"), number("max_params_pct", "params % ≤"),
    el("label", { class: "check" }, paretoBox, " Pareto only"));

  async function load() {
    const params = new URLSearchParams({ ...query });
    for (const [k, v] of Object.entries(filters)) if (v !== "" && v !== undefined) params.set(k, v);
    const page = await getJSON(`/api/studies/${studyId}/trials?${params}`);
    tbody.replaceChildren(...page.rows.map((r) => el("tr", { class: r.pareto ? "pareto" : "" },
      el("td", { class: "num" }, el("a", { href: trialUrl(studyId, r.number) }, r.number)),
      el("td", {}, el("span", { class: `badge ${r.state}` }, r.state)),
      el("td", { class: "num" }, fmt.metric(r.metric)),
      el("td", { class: "num" }, fmt.pct(r.params_pct)),
      el("td", { class: "num" }, fmt.int(r.params)),
      el("td", { class: "plan" }, r.pareto ? el("span", { class: "star", title: "Pareto-optimal" }, "★ ") : null,
        r.summary, r.failure ? el("div", { class: "failure-text" }, r.failure) : null),
      el("td", { class: "nowrap" }, r.device ? `${r.device}${r.precision ? ` ${r.precision}` : ""} · ${fmt.int(r.peak_memory_mb)} MB` : "–"))));
    for (const th of heads) th.classList.toggle("sorted", th.dataset.key === query.sort), th.classList.toggle("desc", th.dataset.key === query.sort && query.order === "desc");
    const last = Math.min(page.offset + page.rows.length, page.matched);
    info.textContent = page.matched ? `${page.offset + 1}–${last} of ${page.matched.toLocaleString("en-US")} (${page.total.toLocaleString("en-US")} trials)` : `no trials match (${page.total} trials)`;
    prev.disabled = page.offset === 0;
    next.disabled = last >= page.matched;
    if (onChange) onChange(page);
  }
  const node = el("div", {}, controls,
    el("div", { class: "table-wrap" }, el("table", { class: "table", id: "trials" }, el("thead", {}, el("tr", {}, heads)), tbody)),
    el("div", { class: "pager" }, prev, info, next));
  return { node, load };
}

// The search front beside its refined values (autopeft refine): mean ± sd over seeds, and whether
// the refined front reorders the search front.
function refinementSection(studyId, r) {
  const pm = (p) => p.refined_mean === null ? "–" : `${fmt.metric(p.refined_mean)}${p.refined_sd === null ? "" : ` ± ${fmt.metric(p.refined_sd)}`}`;
  const delta = (p) => p.refined_delta === null ? "–" : `${p.refined_delta >= 0 ? "+" : ""}${fmt.metric(p.refined_delta)}`;
  const front = (p) => p.refined_front === null ? "–" : (p.refined_front ? el("span", { class: "star", title: "on the refined front" }, "★") : el("span", { class: "badge fail" }, "dominated"));
  const rows = r.points.map((p) => el("tr", { class: p.refined_front === false ? "dropped" : "" },
    el("td", { class: "num" }, el("a", { href: trialUrl(studyId, p.trial) }, p.trial)),
    el("td", { class: "num" }, fmt.pct(p.params_pct)),
    el("td", { class: "num" }, fmt.metric(p.search_metric)),
    el("td", { class: "num" }, pm(p)),
    el("td", { class: "num" }, p.refined_n || "–"),
    el("td", { class: "num" }, delta(p)),
    el("td", {}, front(p))));
  return el("section", { class: "card", id: "refinement" }, el("h2", {}, "Refined front"),
    el("p", { class: "hint" }, `${r.name}: ${r.description}. ${r.refined} of ${r.points.length} front trial(s) refined, ${r.complete} run(s) complete, ${r.failed} failed.`),
    el("p", { class: r.reorders ? "note reorder" : "note", id: "refinement-note" }, r.note),
    el("div", { class: "table-wrap" }, el("table", { class: "table", id: "refined-table" },
      el("thead", {}, el("tr", {}, ["#", "params %", "search metric", "refined mean ± sd", "n", "Δ", "refined front"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))));
}

async function studyPage() {
  const id = body.dataset.study;
  const first = await getJSON(`/api/studies/${id}/figures`);
  let version = first.version;
  const head = el("div");
  const paretoDiv = el("div", { id: "pareto-plot", class: "plot" });
  const hvDiv = el("div", { id: "hypervolume-plot", class: "plot" });
  const layerDiv = el("div", { id: "layer-map", class: "plot" });
  const table = trialsTable(id);
  const refined = el("div");
  fill(main, head,
    el("section", { class: "card" }, el("h2", {}, "Pareto front"),
      el("p", { class: "hint" }, "Metric against trainable parameters. Pareto-optimal trials are joined by the step line; click a point to open its trial."), paretoDiv),
    refined,
    el("section", { class: "card" }, el("h2", {}, "Where the front puts its parameters"),
      el("p", { class: "hint" }, "Pareto-optimal configurations (rows, cheapest at the bottom) × layers; cell = rank, width or length. Click a row to open its trial."), layerDiv),
    el("section", { class: "card" }, el("h2", {}, "Hypervolume"), el("p", { class: "hint" }, "Area dominated by the front inside the reference box (worst acceptable metric — a floor, or a ceiling for a minimised metric — and the budget), by trial number and over time."), hvDiv),
    el("section", { class: "card" }, el("h2", {}, "Trials"), table.node));

  const open = (event) => {
    const point = event.points && event.points[0];
    if (!point || point.customdata === undefined) return;
    const n = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
    window.location.href = trialUrl(id, n);
  };
  const clickable = (div) => {
    if (!div.dataset.clickable) { div.on("plotly_click", open); div.dataset.clickable = "1"; }
  };
  const draw = (figs) => {
    head.replaceChildren(studyHeader(figs.summary));
    document.title = `${figs.summary.name} · autopeft`;
    Plotly.react(paretoDiv, figs.pareto.data, figs.pareto.layout, plotConfig);
    clickable(paretoDiv);
    refined.replaceChildren(...(figs.refinement ? [refinementSection(id, figs.refinement)] : []));
    Plotly.react(hvDiv, figs.hypervolume.data, figs.hypervolume.layout, plotConfig);
    if (figs.layer_map.data.length) {
      Plotly.react(layerDiv, figs.layer_map.data, figs.layer_map.layout, plotConfig);
      clickable(layerDiv);
    } else layerDiv.replaceChildren(el("p", { class: "muted" }, "No completed trials yet."));
  };
  draw(first);
  await table.load();
  body.dataset.ready = "1";
  poll(async () => {
    const figs = await getJSON(`/api/studies/${id}/figures`);
    if (figs.version === version) return;
    version = figs.version;
    draw(figs);
    await table.load();
  });
}

// --- Trial page ------------------------------------------------------------------------------
function kvTable(entries) {
  const rows = entries.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" && !(v instanceof Node) ? JSON.stringify(v) : v)));
  return rows.length ? el("table", { class: "kv" }, el("tbody", {}, rows)) : el("p", { class: "muted" }, "–");
}

function exportButtons(t) {
  const status = el("span", { class: "muted", id: "export-status" });
  const labels = { peft: "PEFT adapter_config.json", adapters: "AdapterHub config", yaml: "autopeft YAML" };
  const buttons = Object.entries(t.exports).map(([format, url]) => el("button", {
    type: "button", class: "primary", "data-format": format,
    onclick: async () => {
      status.textContent = "";
      const response = await fetch(url);
      if (!response.ok) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail; } catch (_) { /* keep status text */ }
        status.textContent = detail;
        status.className = "failure-text";
        return;
      }
      const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      const link = el("a", { href: URL.createObjectURL(await response.blob()), download: match ? match[1] : format });
      document.body.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    },
  }, `⬇ ${labels[format] || format}`));
  if (!buttons.length) return el("p", { class: "muted" }, "Only complete trials can be exported.");
  return el("div", { class: "exports" }, buttons, status);
}

async function trialPage() {
  const id = body.dataset.study;
  const number = body.dataset.trial;
  const render = async (t) => {
    const planDiv = el("div", { id: "plan-plot", class: "plot" });
    const layers = t.plan_layers;
    const options = layers ? Object.entries(layers.options).map(([family, o]) =>
      `${family}: ${Object.entries(o).map(([k, v]) => `${k} ${v}`).join(", ") || "–"}`) : [];
    fill(main, 
      el("div", { class: "page-head" },
        el("div", {},
          el("p", { class: "crumbs" }, el("a", { href: "/" }, "Studies"), " / ", el("a", { href: studyUrl(id) }, t.study_name)),
          el("h1", {}, `Trial ${t.number} `, el("span", { class: `badge ${t.state}` }, t.state),
            t.pareto ? el("span", { class: "badge pareto-badge" }, "★ Pareto-optimal") : null),
          el("p", { class: "plan-summary" }, t.summary || "(no plan recorded)")),
        el("div", { class: "stats" },
          stat("metric", fmt.metric(t.metric)),
          stat("trainable params", fmt.int(t.params)),
          stat("of the model", fmt.pct(t.params_pct)))),
      t.failure ? el("section", { class: "card error" }, el("h2", {}, `Failed: ${t.failure.kind || "error"}`), el("pre", {}, t.failure.message || "")) : null,
      el("section", { class: "card" }, el("h2", {}, "Export"), exportButtons(t)),
      el("section", { class: "card" }, el("h2", {}, "Plan per layer"), planDiv,
        options.length ? el("p", { class: "muted" }, options.join(" · ")) : null),
      el("div", { class: "grid3" },
        el("section", { class: "card" }, el("h2", {}, "Metrics"), kvTable(Object.entries(t.metrics).map(([k, v]) => [k, typeof v === "number" ? fmt.metric(v) : v]))),
        el("section", { class: "card" }, el("h2", {}, "Fidelity"), kvTable(Object.entries(t.fidelity))),
        el("section", { class: "card" }, el("h2", {}, "Timings and worker"), kvTable([
          ["started", fmt.time(t.timings.start)], ["completed", fmt.time(t.timings.complete)],
          ["wall time", t.timings.wall_seconds === null ? null : fmt.secs(t.timings.wall_seconds)],
          ["training", t.timings.train_seconds === null || t.timings.train_seconds === undefined ? null : fmt.secs(t.timings.train_seconds)],
          ["evaluation", t.timings.eval_seconds === null || t.timings.eval_seconds === undefined ? null : fmt.secs(t.timings.eval_seconds)],
          ["peak memory", t.resources.peak_memory_mb === null || t.resources.peak_memory_mb === undefined ? null : `${fmt.int(t.resources.peak_memory_mb)} MB`],
          ["host", t.resources.host], ["device", t.resources.device], ["precision", t.resources.precision], ["seed", t.resources.seed]]))),
      Object.keys(t.other).length ? el("section", { class: "card" }, el("h2", {}, "Other attributes"), kvTable(Object.entries(t.other))) : null);
    if (layers) {
      const fig = await getJSON(`/api/studies/${id}/trials/${number}/figure`);
      Plotly.react(planDiv, fig.data, fig.layout, plotConfig);
    }
    document.title = `Trial ${t.number} · ${t.study_name} · autopeft`;
  };
  let trial = await getJSON(`/api/studies/${id}/trials/${number}`);
  await render(trial);
  body.dataset.ready = "1";
  poll(async () => {
    if (trial.state !== "running" && trial.state !== "waiting") return;
    const fresh = await getJSON(`/api/studies/${id}/trials/${number}`);
    if (JSON.stringify(fresh) !== JSON.stringify(trial)) { trial = fresh; await render(trial); }
  });
}

const PAGES = { studies: studiesPage, study: studyPage, trial: trialPage };
window.addEventListener("DOMContentLoaded", () => {
  setLive(true);
  (PAGES[body.dataset.page] || (async () => {}))().catch(showError);
});
