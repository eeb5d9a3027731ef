// 督查页: the county review over the last 7, 30 or 90 days: headline figures, the township ranking (sortable
// by any column), the daily trend as a small line chart, the venues with the most problems, problems that
// keep coming back, and gaps in the monitoring. The API covers the venues the user may see.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  // --- formatting ------------------------------------------------------------------------------------------

  const t = VW.t;
  const missing = (v) => v === null || v === undefined;
  const pct = VW.pct;
  const minutes = (s) => (missing(s) ? "—" : t("minutes", { n: VW.num(s / 60) }));
  const points = (v) => (missing(v) ? "—" : VW.num(v));
  const count = (v) => (missing(v) ? "—" : VW.num(v, 0));
  const offline = (m) => (missing(m) ? "—"
    : m >= 120 ? t("hours", { n: VW.num(m / 60) }) : t("minutes", { n: VW.num(Math.round(m), 0) }));

  // The ranking's columns: key in the API's rows, heading, format.
  const COLUMNS = [
    ["rank", t("col.rank"), count], ["name", t("col.township"), String], ["score", t("col.score"), points],
    ["availability", t("col.availability"), pct], ["mean_ack_s", t("col.mean_ack"), minutes],
    ["false_alarm_ratio", t("col.false_alarms"), pct], ["compliance", t("col.compliance"), pct],
    ["alerts", t("col.alerts"), count], ["after_hours", t("col.after_hours"), count],
    ["venues", t("col.venues"), count],
  ];
  const KPIS = [
    ["score", t("col.score"), points], ["availability", t("col.availability"), pct],
    ["compliance", t("col.compliance"), pct], ["mean_ack_s", t("col.mean_ack"), minutes],
    ["false_alarm_ratio", t("col.false_alarms"), pct], ["alerts", t("col.alerts"), count],
    ["unacknowledged", t("kpi.unacknowledged"), count], ["after_hours", t("col.after_hours"), count],
    ["tamper", t("kpi.tamper"), count], ["offline_minutes", t("kpi.offline"), offline],
    ["door_openings", t("kpi.door_openings"), count],
  ];
  // A card's labels (narrow screens) are the table's own headings, in the page's language.
  const headings = (selector) => [...document.querySelectorAll(`${selector} thead th`)].map((th) => th.textContent);

  let days = 30;
  let data = null;
  let sort = { key: "rank", dir: "ascending" };
  let loading = 0;  // a newer request wins over a slower older one

  function td(label, ...children) {
    return VW.el("td", { "data-label": label }, ...children);
  }

  function empty(body, columns, text = t("none")) {
    body.replaceChildren(VW.el("tr", { class: "empty" }, VW.el("td", { colspan: columns }, text)));
  }

  // --- headline figures ------------------------------------------------------------------------------------

  function renderKpis() {
    const s = data.summary;
    $("review-kpis").replaceChildren(...KPIS.map(([key, label, fmt]) =>
      VW.el("div", { "data-kpi": key }, VW.el("dt", {}, label), VW.el("dd", {}, fmt(s[key])))));
  }

  // --- the township ranking --------------------------------------------------------------------------------

  function compare(key) {
    // Township names are Chinese whatever the page's language: sorted as Chinese (pinyin).
    if (key === "name") { return (a, b) => a.name.localeCompare(b.name, "zh-CN"); }
    return (a, b) => a[key] - b[key];
  }

  // Rows without a value (no alerts to acknowledge, no posted hours) go last whichever the direction.
  function sortedRanking() {
    const cmp = compare(sort.key);
    const sign = sort.dir === "ascending" ? 1 : -1;
    const known = data.ranking.filter((r) => !missing(r[sort.key]));
    const unknown = data.ranking.filter((r) => missing(r[sort.key]));
    return [...known.sort((a, b) => sign * cmp(a, b)), ...unknown];
  }

  function renderRankingHead() {
    $("ranking-head").replaceChildren(...COLUMNS.map(([key, label]) => {
      const current = sort.key === key;
      return VW.el("th", { scope: "col", "data-key": key, "aria-sort": current ? sort.dir : "none" },
        VW.el("button", { type: "button", class: "sort", onclick: () => sortBy(key) }, label));
    }));
  }

  function renderRanking() {
    renderRankingHead();
    const body = $("ranking-rows");
    if (!data.ranking.length) { empty(body, COLUMNS.length, t("no_townships")); return; }
    body.replaceChildren(...sortedRanking().map((r) => VW.el("tr", { "data-township": r.id },
      ...COLUMNS.map(([key, label, fmt]) => td(label, fmt(r[key]))))));
  }

  function sortBy(key) {
    sort = sort.key === key ? { key, dir: sort.dir === "ascending" ? "descending" : "ascending" }
      : { key, dir: "ascending" };
    renderRanking();
    $("ranking-head").querySelector(`th[data-key="${key}"] button`).focus();
  }

  // --- the daily trend -------------------------------------------------------------------------------------

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) { node.setAttribute(k, v); }
    for (const child of children) {
      if (child !== null && child !== undefined) { node.append(child instanceof Node ? child : String(child)); }
    }
    return node;
  }

  const SERIES = [["availability", t("col.availability")], ["compliance", t("col.compliance")]];

  // Availability and compliance per day, 0–100 %: a line per series, broken where a day has no data, and a
  // dot on every day that has one (a lone day between gaps is still visible). Hover a dot for its value.
  function renderChart() {
    const trend = data.trend;
    const W = 800, H = 240, left = 48, right = 24, top = 12, bottom = 32;
    const x = (i) => left + (trend.length > 1 ? (i * (W - left - right)) / (trend.length - 1) : (W - left - right) / 2);
    const y = (v) => top + (1 - v) * (H - top - bottom);
    const grid = [0, 0.25, 0.5, 0.75, 1].map((v) => svg("g", { class: "grid" },
      svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, `${v * 100}%`)));
    // At most about eight dates along the bottom, always the last one, none crowding it.
    const last = trend.length - 1;
    const every = Math.max(1, Math.ceil(trend.length / 8));
    const labelled = (i) => i === last || (i % every === 0 && last - i >= every / 2);
    const labels = trend.map((p, i) => (labelled(i)
      ? svg("text", { class: "day-label", x: x(i), y: H - 10, "text-anchor": "middle" }, p.day.slice(5)) : null));
    const lines = SERIES.map(([key, label], n) => {
      let d = "";
      let pen = false;
      const dots = [];
      trend.forEach((p, i) => {
        if (missing(p[key])) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(p[key]).toFixed(1)} `;
        pen = true;
        dots.push(svg("circle", { cx: x(i), cy: y(p[key]), r: 3.5 }, svg("title", {}, `${p.day} ${label} ${pct(p[key])}`)));
      });
      return svg("g", { class: `series series-${n}`, "data-series": key }, d ? svg("path", { d: d.trim() }) : null, ...dots);
    });
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "trend-svg",
                               "aria-label": t("chart_label", { from: data.from, to: data.to }) },
      ...grid, ...labels, ...lines);
    const legend = VW.el("ul", { class: "legend" }, ...SERIES.map(([, label], n) =>
      VW.el("li", {}, VW.el("span", { class: `swatch series-${n}`, "aria-hidden": "true" }), label)));
    const none = trend.every((p) => SERIES.every(([key]) => missing(p[key])));
    $("trend-chart").replaceChildren(none ? VW.el("p", { class: "muted" }, t("no_data")) : chart, legend);
  }

  function renderTrendTable() {
    const head = headings("table.trend");
    $("trend-rows").replaceChildren(...[...data.trend].reverse().map((p) => VW.el("tr", { "data-day": p.day },
      td(head[0], p.day), td(head[1], pct(p.availability)), td(head[2], pct(p.compliance)),
      td(head[3], count(p.alerts)), td(head[4], minutes(p.mean_ack_s)))));
  }

  // --- venues, recurring problems, coverage ----------------------------------------------------------------

  function renderWorst() {
    const body = $("worst-rows");
    if (!data.worst_venues.length) { empty(body, 8); return; }
    const head = headings("table.worst");
    body.replaceChildren(...data.worst_venues.map((v) => VW.el("tr", { "data-venue": v.id },
      td(head[0], v.name), td(head[1], v.village), td(head[2], v.township), td(head[3], points(v.score)),
      td(head[4], pct(v.availability)), td(head[5], pct(v.compliance)), td(head[6], count(v.alerts)),
      td(head[7], count(v.after_hours)))));
  }

  function renderRecurring() {
    const body = $("recurring-rows");
    if (!data.recurring.length) { empty(body, 4); return; }
    const head = headings("table.recurring");
    body.replaceChildren(...data.recurring.map((r) => VW.el("tr", { "data-venue": r.venue, "data-rule": r.rule },
      td(head[0], r.venue_name), td(head[1], r.township), td(head[2], config.rules[r.rule] || r.rule),
      td(head[3], t("days", { n: r.days })))));
  }

  function renderList(id, items, text) {
    const list = $(id);
    list.replaceChildren(...(items.length ? items.map((item) => VW.el("li", {}, text(item)))
      : [VW.el("li", { class: "muted" }, t("none"))]));
  }

  function renderCoverage() {
    const c = data.coverage;
    renderList("no-camera", c.no_camera, (v) => t("paren", { a: v.venue_name, b: v.township }));
    renderList("no-door", c.no_door, (v) => t("paren", { a: v.venue_name, b: v.township }));
    renderList("never-seen", c.never_seen, (d) => t("paren", { a: d.device, b: d.venue_name }));
  }

  // --- period, links, loading ------------------------------------------------------------------------------

  // Last month's review, relative to the server's today (the day after the period's last day).
  function lastMonth() {
    const [y, m, d] = data.to.split("-").map(Number);
    const today = new Date(Date.UTC(y, m - 1, d + 1));
    const month = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, 1));
    return [month.getUTCFullYear(), month.getUTCMonth() + 1];
  }

  function renderLinks() {
    $("review-csv").href = `/api/v1/review.csv?days=${days}`;
    const monthly = $("monthly-pdf");
    if (monthly && config.isCounty && data.to) {
      const [y, m] = lastMonth();
      // The monthly review prints in the page's language (Chinese needs no parameter: the API's default).
      const lang = config.lang && config.lang !== "zh" ? `?lang=${config.lang}` : "";
      monthly.href = `/api/v1/review/monthly/${y}-${String(m).padStart(2, "0")}.pdf${lang}`;
      const month = new Date(Date.UTC(y, m - 1, 1)).toLocaleDateString(VW.locale,
        { timeZone: "UTC", year: "numeric", month: "long" });
      monthly.textContent = t("monthly_pdf", { month });
      monthly.hidden = false;
    }
  }

  function renderMissing() {
    const note = $("missing-days");
    const gaps = data.missing_days;
    note.hidden = !gaps.length;
    note.textContent = !gaps.length ? ""
      : gaps.length <= 10 ? t("missing_days_list", { n: gaps.length, days: VW.list(gaps) })
        : t("missing_days", { n: gaps.length });
  }

  function render() {
    $("review-period").textContent = data.from ? t("period", { from: data.from, to: data.to }) : "";
    renderMissing();
    renderKpis();
    renderRanking();
    renderChart();
    renderTrendTable();
    renderWorst();
    renderRecurring();
    renderCoverage();
    renderLinks();
  }

  async function load() {
    const mine = ++loading;
    document.querySelectorAll(".period-buttons button").forEach((b) => {
      b.setAttribute("aria-pressed", String(Number(b.dataset.days) === days));
    });
    $("review-csv").href = `/api/v1/review.csv?days=${days}`;
    try {
      const answer = await VW.api(`/review?days=${days}`);
      if (mine !== loading) { return; }
      data = answer;
      $("review-error").hidden = true;
      render();
    } catch (err) {
      if (mine !== loading) { return; }
      $("review-error").textContent = t("review_failed", { error: err.message });
      $("review-error").hidden = false;
    }
  }

  document.querySelectorAll(".period-buttons button").forEach((b) => {
    b.addEventListener("click", () => { days = Number(b.dataset.days); load(); });
  });
  load();
})();
