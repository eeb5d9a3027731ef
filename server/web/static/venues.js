// 场所页: every venue in scope with its live door and device state.
"use strict";

(() => {
  const body = document.getElementById("venue-rows");
  const DOOR = { open: "开门", closed: "关门" };
  const DEVICE = { online: "在线", offline: "离线", unknown: "未上线" };
  let venues = new Map();

  function doors(v) {
    if (!v.sensors.length) { return "—"; }
    return VW.el("span", {}, ...v.sensors.filter((s) => s.kind === "door").map((s) =>
      VW.el("span", { class: `pill door-${s.state}`, "data-sensor": `${s.device}/${s.sensor}` },
        `${s.sensor}：${DOOR[s.state] || s.state}`)));
  }

  // Supervision at a glance: since when, last heartbeat, what waits in the Pi's journal, the 4G signal.
  function health(d) {
    const parts = [];
    if (d.status_at) { parts.push(`${DEVICE[d.status] || d.status}自 ${VW.time(d.status_at)}`); }
    if (d.last_seen) { parts.push(`最后心跳 ${VW.time(d.last_seen)}`); }
    if (d.journal_backlog) { parts.push(`待补传 ${d.journal_backlog} 条`); }
    if (d.signal_pct !== null && d.signal_pct !== undefined) { parts.push(`信号 ${d.signal_pct}%`); }
    if (d.clock_skew_s !== null && d.clock_skew_s !== undefined && Math.abs(d.clock_skew_s) > 120) {
      parts.push(`时钟偏差 ${Math.round(d.clock_skew_s)} 秒`);
    }
    if (d.gap_since) { parts.push(`数据缺失自 ${VW.time(d.gap_since)}`); }
    return VW.el("div", { class: "device-health" }, parts.join(" · "));
  }

  function deviceCell(v) {
    const entries = Object.entries(v.devices);
    if (!entries.length) { return "—"; }
    return VW.el("span", {}, ...entries.map(([id, d]) => VW.el("div", { "data-device": id },
      VW.el("span", { class: `pill dev-${d.status}` }, `${id}：${DEVICE[d.status] || d.status}`), health(d))));
  }

  function render() {
    body.replaceChildren(...[...venues.values()].map((v) => VW.el("tr", { "data-venue-id": v.id },
      VW.el("td", {}, v.township_name), VW.el("td", {}, v.village_name), VW.el("td", {}, v.name),
      VW.el("td", {}, v.open_now ? "开放时段" : "非开放时段"), VW.el("td", {}, doors(v)),
      VW.el("td", {}, deviceCell(v)))));
  }

  function onState(change) {
    const v = venues.get(change.venue);
    if (!v) { return; }
    if (change.status) {
      v.devices[change.device] = { ...(v.devices[change.device] || {}), status: change.status,
        status_at: change.since };
    } else {
      const i = v.sensors.findIndex((s) => s.device === change.device && s.sensor === change.sensor);
      const entry = { device: change.device, sensor: change.sensor, kind: change.kind, state: change.state, since: change.since };
      if (i >= 0) { v.sensors[i] = entry; } else { v.sensors.push(entry); }
    }
    render();
  }

  async function reload() {
    const data = await VW.api("/venues");
    venues = new Map(data.venues.map((v) => [v.id, v]));
    render();
  }

  VW.live({ state: onState }, reload);
  reload();
  // "open to the public now" changes with the clock, not with events: refresh it every minute.
  setInterval(reload, 60000);
})();
