// 场所详情页: one venue: its state badges and today's hours, today's door timeline (门磁记录), its recent alerts,
// a tile per camera with the latest snapshot, each device's health, and a 24 h / 7 d chart of a device
// metric from the rollups, drawn as inline SVG. Live: door, device and alert changes arrive from the stream.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("venue-config").textContent);
  const id = config.venueId;
  const path = `/venues/${encodeURIComponent(id)}`;
  const t = VW.t;
  const word = VWVenue.word;
  const $ = (sel) => document.getElementById(sel);
  const SVG = "http://www.w3.org/2000/svg";
  // Series that count something per step (openings, motion starts): bars of the sum; the rest a line of the mean.
  const COUNTED = /^(door_opened|motion_started|tamper_covered)\./;
  let venue = null;
  let alerts = [];
  let hours = 24;

  function known(key) {
    return t(key) !== key;
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString(VW.locale, VW.zoned({ hour: "2-digit", minute: "2-digit", second: "2-digit" }));
  }

  function failed(node, err) {
    node.replaceChildren(VW.el("p", { class: "error" }, t("load_failed", { error: err.message })));
  }

  // --- head: badges and today's hours -------------------------------------------------------------------

  function unresolved() {
    return alerts.filter((a) => a.status !== "resolved").length;
  }

  function renderHead() {
    $("venue-badges").replaceChildren(VWVenue.badges(venue, unresolved()));
    const today = venue.arming && venue.arming.today;
    const periods = today && today.periods.length ? VW.list(today.periods) : t("closed_today");
    $("venue-today").textContent = today ? t("today", { kind: word("day", today.kind), periods }) : "";
  }

  // --- devices ---------------------------------------------------------------------------------------------

  function renderDevices() {
    const body = $("device-rows");
    const heads = [...document.querySelectorAll("table.devices thead th")].map((th) => th.textContent);
    const entries = Object.entries(venue.devices);
    if (!entries.length) {
      body.replaceChildren(VW.el("tr", { class: "empty" }, VW.el("td", { colspan: "6" }, t("none"))));
      return;
    }
    const cell = (i, ...children) => VW.el("td", { "data-label": heads[i] }, ...children);
    const skew = (s) => (s === null || s === undefined ? "—" : t("seconds", { n: Math.round(s) }));
    body.replaceChildren(...entries.map(([device, d]) => VW.el("tr", { "data-device": device },
      cell(0, device),
      cell(1, VW.el("span", { class: `pill dev-${d.status}` }, word("device", d.status)),
           d.gap_since ? VW.el("div", { class: "device-health" }, t("gap_since", { time: VW.time(d.gap_since) })) : null),
      cell(2, d.last_seen ? VW.time(d.last_seen) : "—"),
      cell(3, d.journal_backlog === null || d.journal_backlog === undefined ? "—" : String(d.journal_backlog)),
      cell(4, VW.el("span", { class: d.clock_skew_s && Math.abs(d.clock_skew_s) > 120 ? "error" : "" },
                    skew(d.clock_skew_s))),
      cell(5, d.signal_pct === null || d.signal_pct === undefined ? "—" : `${d.signal_pct}%`))));
  }

  // --- door timeline (today) ---------------------------------------------------------------------------

  async function loadDoors() {
    const list = $("door-timeline");
    try {
      const since = encodeURIComponent(config.todayStart);
      const data = await VW.api(`/events?venue=${encodeURIComponent(id)}&kind=door&since=${since}`);
      if (!data.events.length) {
        list.replaceChildren(VW.el("li", { class: "muted" }, t("no_doors_today")));
        return;
      }
      list.replaceChildren(...data.events.map((e) => VW.el("li", { class: `door-event door-${e.state}`, "data-event-id": e.id },
        VW.el("time", { datetime: e.occurred_at }, clock(e.occurred_at)), " ",
        VW.el("span", { class: `pill door-${e.state}` }, t("sensor_state", { sensor: e.sensor, state: word("door", e.state) })),
        e.late ? VW.el("span", { class: "muted" }, t("late")) : null)));
    } catch (err) { failed(list, err); }
  }

  // --- recent alerts -----------------------------------------------------------------------------------

  function alertTitle(a) {
    return known(`rule.${a.rule}`) ? t(`rule.${a.rule}`) : (a.title || a.rule);
  }

  async function loadAlerts() {
    const list = $("recent-alerts");
    try {
      alerts = (await VW.api(`/alerts?venue=${encodeURIComponent(id)}&limit=50`)).alerts;
      if (venue) { renderHead(); }
      if (!alerts.length) {
        list.replaceChildren(VW.el("li", { class: "muted" }, t("no_alerts")));
        return;
      }
      list.replaceChildren(...alerts.slice(0, 10).map((a) => VW.el("li", { class: `st-${a.status}`, "data-alert-id": a.id },
        VW.el("span", { class: `badge sev-${a.severity}` }, word("severity", a.severity)), " ",
        VW.el("strong", {}, alertTitle(a)), " ",
        VW.el("span", { class: "muted" }, t("alert_line", { time: VW.time(a.opened_at), status: word("status", a.status) })))));
    } catch (err) { failed(list, err); }
  }

  // --- camera tiles ------------------------------------------------------------------------------------

  async function loadCameras() {
    const tiles = $("camera-tiles");
    try {
      const data = await VW.api(`${path}/cameras`);
      if (!data.cameras.length) {
        tiles.replaceChildren(VW.el("p", { class: "muted" }, t("no_cameras")));
        return;
      }
      tiles.replaceChildren(...data.cameras.map((c) => {
        const snap = c.snapshot;
        const picture = snap
          ? VW.el("a", { href: snap.url, target: "_blank", rel: "noopener" },
                  VW.el("img", { class: "camera-shot", src: snap.url, alt: t("snapshot_alt", { time: VW.time(snap.occurred_at) }) }))
          : VW.el("div", { class: "no-snapshot" }, t("no_snapshot"));
        return VW.el("figure", { class: "camera-tile", "data-camera": `${c.device}/${c.camera}` }, picture,
          VW.el("figcaption", {}, VW.el("strong", {}, c.camera), " ",
            c.state ? VW.el("span", { class: "pill" }, word("camera_state", c.state)) : null,
            VW.el("div", { class: "muted" }, snap ? t("snapshot_at", { time: VW.time(snap.occurred_at) }) : c.device)));
      }));
    } catch (err) { failed(tiles, err); }
  }

  // --- chart -------------------------------------------------------------------------------------------

  function metricName(metric) {
    const [kind, sensor] = metric.split(/\.(.*)/s);
    if (known(`metric.${metric}`)) { return t(`metric.${metric}`); }
    return known(`metric.${kind}`) ? t("metric_sensor", { metric: t(`metric.${kind}`), sensor }) : metric;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) { node.setAttribute(k, v); }
    for (const child of children) { node.append(child); }
    return node;
  }

  // A ceiling that makes round grid lines: 7 → 8, 130 → 150, 0.4 → 0.5.
  function niceMax(value) {
    if (value <= 0) { return 1; }
    const scale = 10 ** Math.floor(Math.log10(value));
    return [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * scale).find((m) => m >= value);
  }

  function draw(data, metric) {
    const W = 720; const H = 240; const L = 52; const R = 12; const T = 12; const B = 30;
    const counted = COUNTED.test(metric);
    const points = data.points.map((p) => ({ at: Date.parse(p.t), v: counted ? p.sum : p.mean }));
    const start = Date.parse(data.start); const end = Date.parse(data.end);
    const top = niceMax(Math.max(counted ? 4 : 0, ...points.map((p) => p.v)));  // counts: whole-number lines
    const x = (at) => L + ((at - start) / (end - start)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const label = t("chart_label", { metric: metricName(metric), range: t(hours === 24 ? "range.day" : "range.week") });
    const chart = svg("svg", { class: "trend-svg venue-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label },
                      svg("title", {}, label));
    const grid = svg("g", { class: "grid" });
    const digits = Number.isInteger(top / 4) ? 0 : 2;
    for (let i = 0; i <= 4; i += 1) {
      const v = (top * i) / 4;
      grid.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }),
                  svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, VW.num(v, digits)));
    }
    const tick = hours <= 24 ? { hour: "2-digit", minute: "2-digit" } : { month: "numeric", day: "numeric" };
    for (let i = 0; i <= 6; i += 1) {
      const at = start + ((end - start) * i) / 6;
      grid.append(svg("text", { x: x(at), y: H - 8, "text-anchor": "middle" },
                      new Date(at).toLocaleString(VW.locale, VW.zoned(tick))));
    }
    chart.append(grid);
    const series = svg("g", { class: "series series-0" });
    const stepMs = data.step_minutes * 60000;
    if (counted) {
      const width = Math.max(1, x(start + stepMs) - x(start) - 1);
      for (const p of points) {
        series.append(svg("rect", { class: "bar", x: x(p.at), y: y(p.v), width, height: Math.max(0, y(0) - y(p.v)) }));
      }
    } else {
      // A step without data is a gap in the line, not a slope across the silence.
      let d = "";
      points.forEach((p, i) => {
        const joined = i > 0 && p.at - points[i - 1].at <= stepMs * 1.5;
        d += `${joined ? "L" : "M"}${x(p.at + stepMs / 2).toFixed(1)},${y(p.v).toFixed(1)} `;
      });
      series.append(svg("path", { d: d.trim() }));
    }
    chart.append(series);
    return chart;
  }

  async function loadChart() {
    const box = $("venue-chart");
    const device = $("chart-device").value;
    const pick = $("chart-metric");
    if (!device) {
      box.replaceChildren(VW.el("p", { class: "muted" }, t("no_series")));
      return;
    }
    try {
      const base = `/devices/${encodeURIComponent(device)}/series`;
      const { metrics } = await VW.api(`${base}?hours=168`);
      const chosen = pick.value;
      pick.replaceChildren(...metrics.map((m) => VW.el("option", { value: m }, metricName(m))));
      pick.value = metrics.includes(chosen) ? chosen
        : (metrics.find((m) => m.startsWith("door_opened.")) || metrics.find((m) => m === "journal_backlog") || metrics[0] || "");
      if (!pick.value) {
        box.replaceChildren(VW.el("p", { class: "muted" }, t("no_series")));
        return;
      }
      const data = await VW.api(`${base}?metric=${encodeURIComponent(pick.value)}&hours=${hours}`);
      box.replaceChildren(data.points.length ? draw(data, pick.value)
        : VW.el("p", { class: "muted" }, t("no_points")));
    } catch (err) { failed(box, err); }
  }

  // --- loading and live updates ------------------------------------------------------------------------

  async function loadVenue() {
    venue = await VW.api(path);
    const pick = $("chart-device");
    if (!pick.options.length) {
      pick.replaceChildren(...Object.keys(venue.devices).map((d) => VW.el("option", { value: d }, d)));
    }
    renderHead();
    renderDevices();
  }

  async function reload() {
    await loadVenue();
    await Promise.all([loadDoors(), loadAlerts(), loadCameras(), loadChart()]);
  }

  function onState(change) {
    if (!venue || change.venue !== id) { return; }
    VWVenue.apply(venue, change);
    renderHead();
    renderDevices();
    if (change.kind === "door") { loadDoors(); }
    if (["camera", "motion", "tamper"].includes(change.kind)) { loadCameras(); }
  }

  function onAlert(alert) {
    if (alert.venue === id) { loadAlerts(); }
  }

  document.querySelectorAll(".period-buttons button").forEach((button) => button.addEventListener("click", () => {
    hours = Number(button.dataset.hours);
    document.querySelectorAll(".period-buttons button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    loadChart();
  }));
  $("chart-device").addEventListener("change", () => { $("chart-metric").replaceChildren(); loadChart(); });
  $("chart-metric").addEventListener("change", loadChart);

  VW.live({ state: onState, alert: onAlert }, reload);
  reload().catch((err) => failed($("device-rows").closest("section"), err));
  setInterval(() => loadVenue().catch(() => {}), 60000);  // "open now" and scheduled arming follow the clock
})();
