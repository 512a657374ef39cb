/* Neuron explorer: renders the data embedded in #explorer-data (schema: irneurons.explorer). Vanilla JS,
   no network, works from file://. */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const F = Object.fromEntries(D.stat_fields.map((f, i) => [f, i]));
  const CLASS_LABEL = { relevant: "relevant", non_relevant: "non-relevant", all: "all pairs" };
  const state = {
    unitType: "", layer: "", set: "", dataset: "", search: "",
    cls: D.classes.indexOf(D.default_class), part: D.parts.indexOf(D.default_part),
    sortKey: "mean:0", sortDir: -1, open: null,
  };
  if (state.cls < 0) state.cls = 0;
  if (state.part < 0) state.part = 0;

  // ---- helpers -------------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") node.setAttribute("style", v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    const a = Math.abs(x);
    if (Number.isInteger(x) && a < 1e6) return String(x);
    return a < 1e-3 || a >= 1e5 ? x.toExponential(2) : x.toPrecision(3);
  }
  const signed = (x) => (x === null || x === undefined ? "–" : (x > 0 ? "+" : "") + fmt(x));
  const signClass = (x) => (x > 0 ? "pos" : x < 0 ? "neg" : "");
  function stat(u, d, c, p, field) {
    const cell = u.stats[d] && u.stats[d][c] && u.stats[d][c][p];
    return cell ? cell[F[field]] : null;
  }
  function option(value, label, selected) {
    return el("option", { value: String(value), selected: selected ? true : null, text: label });
  }
  function fill(id, options, value) {
    const node = document.getElementById(id);
    node.replaceChildren(...options.map(([v, l]) => option(v, l, String(v) === String(value))));
    return node;
  }

  // ---- derived per-unit fields -----------------------------------------------------------------------------
  for (const u of D.units) {
    const sets = u.sets.map((i) => D.sets[i]);
    const sel = sets.filter((s) => s.selected);
    u.nsel = sel.length;
    u.strategies = [...new Set(sel.map((s) => s.strategy))].sort().join(", ");
    u.from = new Set(sel.flatMap((s) => s.members));
    const deltas = sets.flatMap((s) => s.pruning.map((p) => p.delta)).filter((x) => x !== null);
    u.minDelta = deltas.length ? Math.min(...deltas) : null;
  }
  const byId = Object.fromEntries(D.units.map((u) => [u.id, u]));

  // ---- table -----------------------------------------------------------------------------------------------
  function shownDatasets() {
    return D.datasets.map((d, i) => [d, i]).filter(([d]) => !state.dataset || d === state.dataset);
  }
  function columns() {
    const cols = [
      { key: "id", label: "unit", cls: "id", get: (u) => u.id, text: true },
      { key: "unit_type", label: "type", cls: "text", get: (u) => u.unit_type, text: true },
      { key: "layer", label: "layer", get: (u) => u.layer },
      { key: "unit", label: "index", get: (u) => u.unit },
    ];
    for (const [d, i] of shownDatasets()) {
      cols.push({ key: `mean:${i}`, label: `${d} mean`, mean: i, get: (u) => stat(u, i, state.cls, state.part, "mean") });
      cols.push({ key: `act:${i}`, label: `${d} |act|`, get: (u) => stat(u, i, state.cls, state.part, "absact") });
    }
    cols.push({ key: "nsel", label: "sets", get: (u) => u.nsel });
    cols.push({ key: "strategies", label: "strategies", cls: "text", get: (u) => u.strategies, text: true });
    cols.push({ key: "minDelta", label: `min Δ${D.metric}`, delta: true, get: (u) => u.minDelta });
    return cols;
  }
  function visibleUnits() {
    const q = state.search.trim().toLowerCase();
    return D.units.filter((u) =>
      (!state.unitType || u.unit_type === state.unitType) &&
      (state.layer === "" || u.layer === Number(state.layer)) &&
      (state.set === "" || u.sets.includes(Number(state.set))) &&
      (!state.dataset || u.from.has(state.dataset)) &&
      (!q || u.id.toLowerCase().includes(q)));
  }
  function sortUnits(rows, cols) {
    const col = cols.find((c) => c.key === state.sortKey) || cols[0];
    const dir = state.sortDir;
    return rows.slice().sort((a, b) => {
      const x = col.get(a), y = col.get(b);
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const c = col.text ? String(x).localeCompare(String(y), undefined, { numeric: true }) : x - y;
      return c * dir || a.id.localeCompare(b.id, undefined, { numeric: true });
    });
  }
  function renderTable() {
    const cols = columns();
    if (!cols.some((c) => c.key === state.sortKey)) state.sortKey = cols.find((c) => c.mean !== undefined)?.key || "id";
    const head = document.querySelector("#units thead tr");
    head.replaceChildren(...cols.map((c) => el("th", {
      class: [c.cls, c.key === state.sortKey ? (state.sortDir > 0 ? "sorted-asc" : "sorted-desc") : ""].filter(Boolean).join(" "),
      "data-key": c.key, title: "sort by " + c.label,
      onclick: () => { state.sortDir = state.sortKey === c.key ? -state.sortDir : (c.text ? 1 : -1); state.sortKey = c.key; renderTable(); },
    }, c.label)));
    const rows = sortUnits(visibleUnits(), cols);
    const scale = {};
    for (const c of cols.filter((c) => c.mean !== undefined)) {
      scale[c.key] = Math.max(1e-30, ...rows.map((u) => Math.abs(c.get(u) || 0)));
    }
    const body = document.querySelector("#units tbody");
    body.replaceChildren(...rows.map((u) => el("tr", {
      "data-id": u.id, class: u.id === state.open ? "active" : null, onclick: () => openCard(u.id),
    }, cols.map((c) => cell(u, c, scale[c.key])))));
    document.getElementById("count").textContent = `${rows.length} of ${D.units.length} units shown`;
  }
  function cell(u, c, scale) {
    const v = c.get(u);
    if (c.text) return el("td", { class: c.cls }, v);
    if (c.mean !== undefined) {
      const se = stat(u, c.mean, state.cls, state.part, "se");
      const w = v === null ? 0 : Math.round(36 * Math.abs(v) / scale);
      const colour = v < 0 ? "rgb(var(--neg))" : "rgb(var(--pos))";
      return el("td", { class: signClass(v), title: `mean ± s.e. (n = ${stat(u, c.mean, state.cls, state.part, "n")})` },
        el("span", { class: "bar", style: `width:${w}px;background:${colour}` }), fmt(v), " ", el("span", { class: "se" }, "±" + fmt(se)));
    }
    if (c.delta) return el("td", { class: signClass(v) }, signed(v));
    return el("td", {}, fmt(v));
  }

  // ---- card ------------------------------------------------------------------------------------------------
  function openCard(id) {
    const u = byId[id];
    if (!u) return;
    state.open = id;
    for (const tr of document.querySelectorAll("#units tbody tr")) tr.classList.toggle("active", tr.dataset.id === id);
    const card = document.getElementById("card");
    card.hidden = false;
    card.dataset.id = id;
    document.getElementById("card-title").textContent = id;
    const kind = u.unit_type === "head" ? "attention head" : "FFN neuron";
    document.getElementById("card-meta").textContent =
      `${kind} ${u.unit} of layer ${u.layer} · in ${u.sets.length} set(s), ${u.nsel} of them selected (${u.strategies || "none"})`;
    renderCharts(u);
    renderStats(u, "card-stats", [state.part]);
    renderStats(u, "card-stats-all", D.parts.map((_, i) => i));
    renderSets(u);
    renderTokens(u);
  }
  function renderCharts(u) {
    const box = document.getElementById("card-charts");
    const legend = el("div", { class: "legend" }, D.classes.map((c) =>
      el("span", {}, el("i", { style: `background:var(--c-${c})` }), CLASS_LABEL[c] || c)));
    box.replaceChildren(legend, ...D.datasets.map((d, i) => chart(u, i, d)));
  }
  function chart(u, d, title) {
    const W = 430, H = 150, L = 54, R = 8, T = 18, B = 22;
    const pts = [];
    D.parts.forEach((_, p) => D.classes.forEach((_, c) => {
      const m = stat(u, d, c, p, "mean"), se = stat(u, d, c, p, "se") || 0;
      if (m !== null) pts.push({ p, c, m, lo: m - se, hi: m + se });
    }));
    const lo = Math.min(0, ...pts.map((q) => q.lo)), hi = Math.max(0, ...pts.map((q) => q.hi));
    const pad = (hi - lo) * 0.08 || 1e-12;
    const y0 = lo - pad, y1 = hi + pad;
    const y = (v) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
    const band = (W - L - R) / D.parts.length;
    const x = (p, c) => L + band * (p + 0.5) + (c - (D.classes.length - 1) / 2) * Math.min(9, band / 5);
    const g = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-dataset": title });
    g.append(svg("text", { x: 2, y: 12, class: "title" }, title));
    g.append(svg("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#9aa4b2", "stroke-width": 1 }));
    const ticks = [lo, hi].filter((v) => v !== 0);  // the ends of the data, and 0 where it has room
    if (ticks.every((v) => Math.abs(y(v) - y(0)) > 11)) ticks.push(0);
    for (const v of ticks) g.append(svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, fmt(v)));
    D.parts.forEach((name, p) => {
      if (p % 2) g.append(svg("rect", { x: L + band * p, y: T, width: band, height: H - T - B, fill: "#f3f5f9" }));
      g.append(svg("text", { x: L + band * (p + 0.5), y: H - 6, "text-anchor": "middle" }, name));
    });
    for (const q of pts) {
      const colour = getComputedStyle(document.documentElement).getPropertyValue(`--c-${D.classes[q.c]}`).trim() || "#333";
      const cx = x(q.p, q.c);
      g.append(svg("line", { x1: cx, x2: cx, y1: y(q.lo), y2: y(q.hi), stroke: colour, "stroke-width": 1.3, class: "errorbar" }));
      for (const v of [q.lo, q.hi]) g.append(svg("line", { x1: cx - 2.5, x2: cx + 2.5, y1: y(v), y2: y(v), stroke: colour }));
      const dot = svg("circle", { cx, cy: y(q.m), r: 3, fill: colour });
      dot.append(svg("title", {}, `${title} · ${D.classes[q.c]} · ${D.parts[q.p]}: ${fmt(q.m)} ± ${fmt(q.hi - q.m)}`));
      g.append(dot);
    }
    return g;
  }
  function renderStats(u, id, parts) {
    const rows = [];
    D.datasets.forEach((d, di) => parts.forEach((p) => D.classes.forEach((c, ci) => {
      const f = (name) => stat(u, di, ci, p, name);
      rows.push(el("tr", { "data-dataset": d, "data-class": c, "data-part": D.parts[p] },
        el("td", {}, d), el("td", { class: "text" }, CLASS_LABEL[c] || c), el("td", { class: "text" }, D.parts[p]),
        el("td", { class: "mean " + signClass(f("mean")) }, fmt(f("mean"))), el("td", { class: "se" }, fmt(f("se"))),
        el("td", {}, f("n") ?? "–"), el("td", { class: "absact" }, fmt(f("absact")))));
    })));
    const head = el("tr", {}, ["dataset", "class", "part", "mean", "± s.e.", "n", "mean |act|"].map((h, i) =>
      el("th", { class: i === 1 || i === 2 ? "text" : null }, h)));
    document.getElementById(id).replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  }
  function renderSets(u) {
    const sets = u.sets.map((i) => D.sets[i]).sort((a, b) => (b.selected - a.selected) || a.id.localeCompare(b.id));
    const rows = [];
    for (const s of sets) {
      const effects = s.pruning.length ? s.pruning : [null];
      for (const e of effects) {
        rows.push(el("tr", { class: s.selected ? null : "random", "data-set": s.id },
          el("td", {}, s.id.split("/").flatMap((x, i, a) => (i < a.length - 1 ? [x + "/", el("wbr")] : [x]))),
          el("td", { class: "text" }, e ? e.dataset : "not pruned"),
          el("td", { class: "text" }, e ? e.target : ""), el("td", {}, e ? fmt(e.value) : ""),
          el("td", { class: "delta " + (e ? signClass(e.delta) : "") }, e ? signed(e.delta) : "")));
      }
    }
    const head = el("tr", {}, ["set", "dataset", "pruned", D.metric, "Δ"].map((h, i) =>
      el("th", { class: i === 1 || i === 2 ? "text" : null }, h)));
    document.getElementById("card-sets").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  }
  function renderTokens(u) {
    const box = document.getElementById("card-tokens");
    if (!D.per_token) return box.replaceChildren(el("p", { class: "empty" }, "no per-token data (explorer/neuron_tokens.json not written)"));
    if (!u.top_tokens) return box.replaceChildren(el("p", { class: "empty" }, "no per-token data for this unit"));
    const top = Math.max(...u.top_tokens.map((h) => Math.abs(h.value)), 1e-30);
    box.replaceChildren(...u.top_tokens.map((h) => el("div", { class: "hit" },
      el("span", { class: "ctx" }, (h.position > h.left.length ? "… " : "") + h.left.join(" ")), " ",
      el("span", { class: "tok", style: tokenStyle(h.value, top) }, h.token), " ",
      el("span", { class: "ctx" }, h.right.join(" ") + (h.position + 1 + h.right.length < h.length ? " …" : "")),
      el("small", {}, `${signed(h.value)} · ${h.part} · pair ${h.pair_id} (${h.dataset}, ${CLASS_LABEL[h.cls] || h.cls})`))));
  }
  function tokenStyle(v, scale) {
    const a = Math.min(1, Math.abs(v) / scale);
    return `background:rgba(var(${v >= 0 ? "--pos" : "--neg"}),${a.toFixed(2)})` + (a > 0.6 ? ";color:#fff" : "");
  }

  // ---- pairs view ------------------------------------------------------------------------------------------
  function renderPairs() {
    const box = document.getElementById("pairs");
    if (!D.pairs.length) return box.replaceChildren(el("p", { class: "empty" }, "no token attributions (figures.token_examples is 0)"));
    box.replaceChildren(...D.pairs.map((p) => {
      const scale = Math.max(...p.attribution.map((a) => Math.abs(a || 0)), 1e-30);
      const total = p.attribution.reduce((s, a) => s + (a || 0), 0);
      const label = p.label === 1 ? "relevant" : "non-relevant";
      return el("div", { class: "pair", "data-pair": p.pair_id, "data-dataset": p.dataset },
        el("h4", {}, `${p.dataset} · pair ${p.pair_id} · ${label} · F(x) = ${fmt(p.f_x)} · Σ attribution = ${fmt(total)}`),
        el("div", { class: "toks" }, p.tokens.map((t, i) => el("span", {
          class: "tok" + (/^\[(CLS|SEP|PAD)\]$/.test(t) ? " special" : ""),
          style: tokenStyle(p.attribution[i] || 0, scale), title: `${p.parts[i]} ${signed(p.attribution[i])}`,
        }, t))));
    }));
  }

  // ---- wiring ----------------------------------------------------------------------------------------------
  function showView(view) {
    for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === view);
    document.getElementById("view-units").hidden = view !== "units";
    document.getElementById("view-pairs").hidden = view !== "pairs";
  }
  function setupFilters() {
    const types = [...new Set(D.units.map((u) => u.unit_type))].sort();
    const layers = [...new Set(D.units.map((u) => u.layer))].sort((a, b) => a - b);
    fill("filter-unit-type", [["", "all"], ...types.map((t) => [t, t])], "");
    fill("filter-layer", [["", "all"], ...layers.map((l) => [l, l])], "");
    fill("filter-set", [["", "all"], ...D.sets.map((s, i) => [i, s]).filter(([, s]) => s.selected && s.size)
      .map(([i, s]) => [i, s.id])], "");
    fill("filter-dataset", [["", "all"], ...D.datasets.map((d) => [d, d])], "");
    fill("filter-class", D.classes.map((c, i) => [i, CLASS_LABEL[c] || c]), state.cls);
    fill("filter-part", D.parts.map((p, i) => [i, p]), state.part);
    const bind = (id, key, num) => document.getElementById(id).addEventListener("change", (e) => {
      state[key] = num ? Number(e.target.value) : e.target.value;
      renderTable();
      if (state.open) openCard(state.open);
    });
    bind("filter-unit-type", "unitType"); bind("filter-layer", "layer"); bind("filter-set", "set");
    bind("filter-dataset", "dataset"); bind("filter-class", "cls", true); bind("filter-part", "part", true);
    document.getElementById("filter-search").addEventListener("input", (e) => { state.search = e.target.value; renderTable(); });
    document.getElementById("card-close").addEventListener("click", () => {
      document.getElementById("card").hidden = true;
      state.open = null;
      renderTable();
    });
    for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  }
  function renderSummary() {
    const n = (t) => D.units.filter((u) => u.unit_type === t).length;
    const base = Object.entries(D.unpruned).map(([d, v]) => `${d} ${fmt(v)}`).join(", ");
    document.getElementById("title").textContent = `Neuron explorer: ${D.name || "study"}`;
    document.getElementById("summary").textContent =
      `${D.units.length} selected units (${n("ffn")} FFN neurons, ${n("head")} heads) from ${D.sets.filter((s) => s.selected).length} ` +
      `selected and ${D.sets.filter((s) => !s.selected).length} random sets · datasets: ${D.datasets.join(", ")}` +
      (base ? ` · unpruned model on the pruning protocol (first-stage top-depth re-ranked), ${D.metric}: ${base}` : "");
    document.getElementById("footer").textContent = D.per_token
      ? `per-token conductance: ${D.per_token.units} units over ${D.per_token.pairs} pairs (explorer/neuron_tokens.json)`
      : "no per-token data: explorer/neuron_tokens.json was not written";
  }

  renderSummary();
  setupFilters();
  renderTable();
  renderPairs();
  showView(location.hash === "#pairs" ? "pairs" : "units");
  document.body.dataset.ready = "1";
})();
