// 督查页: the county review over the last 7, 30 or 90 days: headline figures, the township ranking (sortable
// by any column), the daily trend as a small line chart, the venues with the most problems, problems that
// keep coming back, and gaps in the monitoring. The API covers the venues the user may see.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  // --- formatting ------------------------------------------------------------------------------------------

  const missing = (v) => v === null || v === undefined;
  const pct = (v) => (missing(v) ? "—" : `${(v * 100).toFixed(1)}%`);
  const minutes = (s) => (missing(s) ? "—" : `${(s / 60).toFixed(1)} 分钟`);
  const points = (v) => (missing(v) ? "—" : v.toFixed(1));
  const count = (v) => (missing(v) ? "—" : String(v));
  const offline = (m) => (missing(m) ? "—" : m >= 120 ? `${(m / 60).toFixed(1)} 小时` : `${Math.round(m)} 分钟`);

  // The ranking's columns: key in the API's rows, heading, format.
  const COLUMNS = [
    ["rank", "排名", count], ["name", "乡镇", String], ["score", "综合得分", points],
    ["availability", "设备可用率", pct], ["mean_ack_s", "平均响应时间", minutes],
    ["false_alarm_ratio", "误报率", pct], ["compliance", "开放率", pct], ["alerts", "告警", count],
    ["after_hours", "非开放时段开门", count], ["venues", "场所数", count],
  ];
  const KPIS = [
    ["score", "综合得分", points], ["availability", "设备可用率", pct], ["compliance", "开放率", pct],
    ["mean_ack_s", "平均响应时间", minutes], ["false_alarm_ratio", "误报率", pct], ["alerts", "告警", count],
    ["unacknowledged", "未确认告警", count], ["after_hours", "非开放时段开门", count],
    ["tamper", "摄像头遮挡/移位", count], ["offline_minutes", "设备离线时长", offline],
    ["door_openings", "开门次数", count],
  ];

  let days = 30;
  let data = null;
  let sort = { key: "rank", dir: "ascending" };
  let loading = 0;  // a newer request wins over a slower older one

  function td(label, ...children) {
    return VW.el("td", { "data-label": label }, ...children);
  }

  function empty(body, columns, text = "无") {
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
    if (!data.ranking.length) { empty(body, COLUMNS.length, "无可见的乡镇"); return; }
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

  const SERIES = [["availability", "设备可用率"], ["compliance", "开放率"]];

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
    const labels = trend.map((t, i) => (labelled(i)
      ? svg("text", { class: "day-label", x: x(i), y: H - 10, "text-anchor": "middle" }, t.day.slice(5)) : null));
    const lines = SERIES.map(([key, label], n) => {
      let d = "";
      let pen = false;
      const dots = [];
      trend.forEach((t, i) => {
        if (missing(t[key])) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(t[key]).toFixed(1)} `;
        pen = true;
        dots.push(svg("circle", { cx: x(i), cy: y(t[key]), r: 3.5 }, svg("title", {}, `${t.day} ${label} ${pct(t[key])}`)));
      });
      return svg("g", { class: `series series-${n}`, "data-series": key }, d ? svg("path", { d: d.trim() }) : null, ...dots);
    });
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "trend-svg",
                               "aria-label": `${data.from} 至 ${data.to} 每日设备可用率与开放率` },
      ...grid, ...labels, ...lines);
    const legend = VW.el("ul", { class: "legend" }, ...SERIES.map(([, label], n) =>
      VW.el("li", {}, VW.el("span", { class: `swatch series-${n}`, "aria-hidden": "true" }), label)));
    const none = trend.every((t) => SERIES.every(([key]) => missing(t[key])));
    $("trend-chart").replaceChildren(none ? VW.el("p", { class: "muted" }, "本周期没有数据") : chart, legend);
  }

  function renderTrendTable() {
    const head = ["日期", "设备可用率", "开放率", "告警", "平均响应时间"];
    $("trend-rows").replaceChildren(...[...data.trend].reverse().map((t) => VW.el("tr", { "data-day": t.day },
      td(head[0], t.day), td(head[1], pct(t.availability)), td(head[2], pct(t.compliance)),
      td(head[3], count(t.alerts)), td(head[4], minutes(t.mean_ack_s)))));
  }

  // --- venues, recurring problems, coverage ----------------------------------------------------------------

  function renderWorst() {
    const body = $("worst-rows");
    if (!data.worst_venues.length) { empty(body, 8); return; }
    const head = ["场所", "村", "乡镇", "综合得分", "设备可用率", "开放率", "告警", "非开放时段开门"];
    body.replaceChildren(...data.worst_venues.map((v) => VW.el("tr", { "data-venue": v.id },
      td(head[0], v.name), td(head[1], v.village), td(head[2], v.township), td(head[3], points(v.score)),
      td(head[4], pct(v.availability)), td(head[5], pct(v.compliance)), td(head[6], count(v.alerts)),
      td(head[7], count(v.after_hours)))));
  }

  function renderRecurring() {
    const body = $("recurring-rows");
    if (!data.recurring.length) { empty(body, 4); return; }
    const head = ["场所", "乡镇", "问题", "出现天数"];
    body.replaceChildren(...data.recurring.map((r) => VW.el("tr", { "data-venue": r.venue, "data-rule": r.rule },
      td(head[0], r.venue_name), td(head[1], r.township), td(head[2], config.rules[r.rule] || r.rule),
      td(head[3], `${r.days} 天`))));
  }

  function renderList(id, items, text) {
    const list = $(id);
    list.replaceChildren(...(items.length ? items.map((item) => VW.el("li", {}, text(item)))
      : [VW.el("li", { class: "muted" }, "无")]));
  }

  function renderCoverage() {
    const c = data.coverage;
    renderList("no-camera", c.no_camera, (v) => `${v.venue_name}（${v.township}）`);
    renderList("no-door", c.no_door, (v) => `${v.venue_name}（${v.township}）`);
    renderList("never-seen", c.never_seen, (d) => `${d.device}（${d.venue_name}）`);
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
      monthly.href = `/api/v1/review/monthly/${y}-${String(m).padStart(2, "0")}.pdf`;
      monthly.textContent = `月度督查 PDF（${y}年${m}月）`;
      monthly.hidden = false;
    }
  }

  function renderMissing() {
    const note = $("missing-days");
    const gaps = data.missing_days;
    note.hidden = !gaps.length;
    note.textContent = gaps.length
      ? `有 ${gaps.length} 天没有报告数据` + (gaps.length <= 10 ? `：${gaps.join("、")}` : "") : "";
  }

  function render() {
    $("review-period").textContent = data.from ? `${data.from} 至 ${data.to}` : "";
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
      $("review-error").textContent = "督查数据加载失败：" + err.message;
      $("review-error").hidden = false;
    }
  }

  document.querySelectorAll(".period-buttons button").forEach((b) => {
    b.addEventListener("click", () => { days = Number(b.dataset.days); load(); });
  });
  load();
})();
