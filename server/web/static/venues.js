// 场所页: every venue in scope with today's posted hours, its 布防/撤防 state (with controls for staff who
// may act), and its live door and device state.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("venues-config").textContent);
  const body = document.getElementById("venue-rows");
  const DOOR = { open: "开门", closed: "关门" };
  const DEVICE = { online: "在线", offline: "离线", unknown: "未上线" };
  const DAY_KIND = { workday: "工作日", weekend: "周末", holiday: "节假日", adjusted_workday: "调休工作日" };
  const DURATIONS = [[30, "30 分钟"], [60, "1 小时"], [120, "2 小时"], [240, "4 小时"], [480, "8 小时"]];
  const HEADINGS = ["乡镇", "村", "场所", "开放状态", "布防", "门磁", "设备"];
  // Chosen duration and typed reason per venue: a live door change re-renders the table and must keep them.
  const choices = new Map();
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

  // --- opening hours today ------------------------------------------------------------------------------

  function todayCell(v) {
    const today = (v.arming && v.arming.today) || null;
    // "今日（节假日·国庆节）：不开放", "今日（工作日）：08:30-12:00、14:30-17:30".
    const kind = today ? [DAY_KIND[today.kind] || today.kind, today.note].filter(Boolean).join("·") : "";
    const hours = today ? `今日（${kind}）：${today.periods.length ? today.periods.join("、") : "不开放"}` : "";
    return [VW.el("div", { class: v.open_now ? "open-now" : "" }, v.open_now ? "开放时段" : "非开放时段"),
            hours ? VW.el("div", { class: "today" }, hours) : null];
  }

  // --- arming (布防/撤防) -----------------------------------------------------------------------------------

  // "18:00", or "11月27日 08:30" when the moment is not today (Beijing time).
  function when(iso) {
    const at = new Date(iso);
    const zone = { timeZone: "Asia/Shanghai" };
    const time = at.toLocaleTimeString("zh-CN", { ...zone, hour12: false, hour: "2-digit", minute: "2-digit" });
    const sameDay = at.toLocaleDateString("zh-CN", zone) === new Date().toLocaleDateString("zh-CN", zone);
    return sameDay ? time : `${at.toLocaleDateString("zh-CN", { ...zone, month: "long", day: "numeric" })} ${time}`;
  }

  // "按日程，08:30 自动撤防" or "人工撤防至 18:00，操作人 wang（保洁）".
  function armingSource(a) {
    if (a.source === "override") {
      return `人工${a.armed ? "布防" : "撤防"}至 ${when(a.until)}，操作人 ${a.by}${a.note ? `（${a.note}）` : ""}`;
    }
    return "按日程" + (a.until ? `，${when(a.until)} 自动${a.armed ? "撤防" : "布防"}` : "");
  }

  function choice(venueId) {
    if (!choices.has(venueId)) { choices.set(venueId, { minutes: "120", note: "" }); }
    return choices.get(venueId);
  }

  function armingControls(v) {
    const saved = choice(v.id);
    const minutes = VW.el("select", { class: "arm-minutes", "aria-label": "布防/撤防时长",
                                      onchange: () => { saved.minutes = minutes.value; } },
      ...DURATIONS.map(([value, label]) => VW.el("option", { value }, label)));
    minutes.value = saved.minutes;
    const note = VW.el("input", { type: "text", class: "arm-note", placeholder: "原因（可不填）", "aria-label": "原因",
                                  maxlength: "2000", oninput: () => { saved.note = note.value; } });
    note.value = saved.note;
    const post = (ev, mode) => setArming(ev.target, v, { mode, minutes: Number(minutes.value), note: note.value });
    return VW.el("div", { class: "arming-controls" }, minutes, note,
      VW.el("button", { type: "button", class: "arm", onclick: (ev) => post(ev, "armed") }, "布防"),
      VW.el("button", { type: "button", class: "disarm", onclick: (ev) => post(ev, "disarmed") }, "撤防"),
      v.arming.source === "override"
        ? VW.el("button", { type: "button", class: "schedule", onclick: (ev) => post(ev, "schedule") }, "恢复日程")
        : null);
  }

  function armingCell(v) {
    const a = v.arming;
    return [
      VW.el("div", { class: `arming-state ${a.armed ? "armed" : "disarmed"}` },
        VW.el("strong", {}, a.armed ? "已布防" : "未布防"), " ",
        VW.el("span", { class: "arming-source" }, armingSource(a))),
      config.canAct ? armingControls(v) : null,
    ];
  }

  async function setArming(button, v, body) {
    button.disabled = true;  // a double tap must not post twice
    try {
      const state = await VW.api(`/venues/${encodeURIComponent(v.id)}/arming`, { method: "POST", body });
      choice(v.id).note = "";
      v.arming = state;
      v.armed = state.armed;
      render();
    } catch (err) {
      window.alert("操作失败：" + err.message);
      reload();
    }
  }

  // --- table ---------------------------------------------------------------------------------------------

  function cell(index, ...children) {
    return VW.el("td", { "data-label": HEADINGS[index] }, ...children.flat());
  }

  // A re-render replaces the rows: put keyboard focus back on the same control of the same venue.
  function focused() {
    const node = document.activeElement;
    const tr = node && node.closest ? node.closest("tr[data-venue-id]") : null;
    return tr && body.contains(tr) && node.classList.length ? { id: tr.dataset.venueId, cls: node.classList[0] } : null;
  }

  function refocus(spot) {
    const node = spot && body.querySelector(`tr[data-venue-id="${spot.id}"] .${spot.cls}`);
    if (node) { node.focus(); }
  }

  function render() {
    const spot = focused();
    body.replaceChildren(...[...venues.values()].map((v) => VW.el("tr", { "data-venue-id": v.id },
      cell(0, v.township_name), cell(1, v.village_name), cell(2, v.name), cell(3, todayCell(v)),
      cell(4, armingCell(v)), cell(5, doors(v)), cell(6, deviceCell(v)))));
    refocus(spot);
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
  // "Open to the public now" and scheduled arming change with the clock, not with events: refresh every minute.
  setInterval(reload, 60000);
})();
