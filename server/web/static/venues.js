// 场所页 (status board): every venue in scope as a tree, county → township → village → venue, each with its
// state at a glance (告警, 离线, 开放中, 正常; 布防/撤防), today's posted hours, arming controls for staff who
// may act, and its live door and device state. Filters by township, by state and by name. Live from the
// stream: door and device changes and alerts update the board without a reload.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("venues-config").textContent);
  const board = document.getElementById("board");
  const shownCount = document.getElementById("board-count");
  const pickTownship = document.getElementById("filter-township");
  const pickState = document.getElementById("filter-state");
  const search = document.getElementById("filter-text");
  const head = document.getElementById("venue-head");
  const t = VW.t;
  const word = VWVenue.word;
  const DURATIONS = [30, 60, 120, 240, 480];  // minutes
  // A card's labels (narrow screens) are the table's own headings, in the page's language.
  const HEADINGS = [...head.content.querySelectorAll("th")].map((th) => th.textContent);
  // Chosen duration and typed reason per venue: a live door change re-renders the board and must keep them.
  const choices = new Map();
  const folded = new Set();  // tree nodes the user has closed, kept across re-renders
  const active = new Map();  // unresolved alert id -> venue id
  let venues = new Map();

  function alertCount(venueId) {
    let n = 0;
    for (const venue of active.values()) { if (venue === venueId) { n += 1; } }
    return n;
  }

  function doors(v) {
    if (!v.sensors.length) { return "—"; }
    return VW.el("span", {}, ...v.sensors.filter((s) => s.kind === "door").map((s) =>
      VW.el("span", { class: `pill door-${s.state}`, "data-sensor": `${s.device}/${s.sensor}` },
        t("sensor_state", { sensor: s.sensor, state: word("door", s.state) }))));
  }

  function deviceCell(v) {
    const entries = Object.entries(v.devices);
    if (!entries.length) { return "—"; }
    return VW.el("span", {}, ...entries.map(([id, d]) => VW.el("div", { "data-device": id },
      VW.el("span", { class: `pill dev-${d.status}` },
            t("sensor_state", { sensor: id, state: word("device", d.status) })),
      VW.el("div", { class: "device-health" }, VWVenue.health(d).join(" · ")))));
  }

  // --- opening hours today ------------------------------------------------------------------------------

  function todayCell(v) {
    const today = (v.arming && v.arming.today) || null;
    // "今日（节假日·国庆节）：不开放", "今日（工作日）：08:30-12:00、14:30-17:30".
    const kind = today ? [word("day", today.kind), today.note].filter(Boolean).join("·") : "";
    const periods = today && today.periods.length ? VW.list(today.periods) : t("closed_today");
    const hours = today ? t("today", { kind, periods }) : "";
    return [VW.el("div", { class: v.open_now ? "open-now" : "" }, t(v.open_now ? "open_now" : "closed_now")),
            hours ? VW.el("div", { class: "today" }, hours) : null];
  }

  // --- arming (布防/撤防) -----------------------------------------------------------------------------------

  // "18:00", or "11月27日 08:30" when the moment is not today (Beijing time).
  function when(iso) {
    const at = new Date(iso);
    const time = at.toLocaleTimeString(VW.locale, VW.zoned({ hour: "2-digit", minute: "2-digit" }));
    const day = (moment) => moment.toLocaleDateString(VW.locale, VW.zoned());
    const sameDay = day(at) === day(new Date());
    return sameDay ? time : `${at.toLocaleDateString(VW.locale, VW.zoned({ month: "long", day: "numeric" }))} ${time}`;
  }

  // "按日程，08:30 自动撤防" or "人工撤防至 18:00，操作人 wang（保洁）".
  function armingSource(a) {
    if (a.source === "override") {
      const text = t(a.armed ? "override_armed" : "override_disarmed", { until: when(a.until), by: a.by });
      return a.note ? t("paren", { a: text, b: a.note }) : text;
    }
    return a.until ? t(a.armed ? "schedule_disarm_at" : "schedule_arm_at", { time: when(a.until) }) : t("schedule");
  }

  function choice(venueId) {
    if (!choices.has(venueId)) { choices.set(venueId, { minutes: "120", note: "" }); }
    return choices.get(venueId);
  }

  function armingControls(v) {
    const saved = choice(v.id);
    const minutes = VW.el("select", { class: "arm-minutes", "aria-label": t("arm_minutes"),
                                      onchange: () => { saved.minutes = minutes.value; } },
      ...DURATIONS.map((value) => VW.el("option", { value }, t(`duration.${value}`))));
    minutes.value = saved.minutes;
    const note = VW.el("input", { type: "text", class: "arm-note", placeholder: t("arm_note.placeholder"),
                                  "aria-label": t("arm_note.label"), maxlength: "2000",
                                  oninput: () => { saved.note = note.value; } });
    note.value = saved.note;
    const post = (ev, mode) => setArming(ev.target, v, { mode, minutes: Number(minutes.value), note: note.value });
    return VW.el("div", { class: "arming-controls" }, minutes, note,
      VW.el("button", { type: "button", class: "arm", onclick: (ev) => post(ev, "armed") }, t("arm")),
      VW.el("button", { type: "button", class: "disarm", onclick: (ev) => post(ev, "disarmed") }, t("disarm")),
      v.arming.source === "override"
        ? VW.el("button", { type: "button", class: "schedule", onclick: (ev) => post(ev, "schedule") },
                t("schedule_restore"))
        : null);
  }

  function armingCell(v) {
    const a = v.arming;
    return [
      VW.el("div", { class: `arming-state ${a.armed ? "armed" : "disarmed"}` },
        VW.el("strong", {}, t(a.armed ? "armed" : "disarmed")), " ",
        VW.el("span", { class: "arming-source" }, armingSource(a))),
      config.canAct ? armingControls(v) : null,
    ];
  }

  async function setArming(button, v, body) {
    const spot = focused();  // disabling the button takes the keyboard focus away: given back below
    button.disabled = true;  // a double tap must not post twice
    try {
      const state = await VW.api(`/venues/${encodeURIComponent(v.id)}/arming`, { method: "POST", body });
      choice(v.id).note = "";
      v.arming = state;
      v.armed = state.armed;
      render();
      if (spot && !board.contains(document.activeElement)) { refocus(spot); }
    } catch (err) {
      window.alert(t("op_failed", { error: err.message }));
      reload();
    }
  }

  // --- the tree ------------------------------------------------------------------------------------------

  function cell(index, ...children) {
    return VW.el("td", { "data-label": HEADINGS[index] }, ...children.flat());
  }

  function row(v) {
    const alerts = alertCount(v.id);
    const [worst] = VWVenue.states(v, alerts);
    return VW.el("tr", { "data-venue-id": v.id, class: `venue-row venue-${worst}` },
      cell(0, VW.el("a", { class: "venue-link", href: `/venues/${encodeURIComponent(v.id)}` }, v.name),
           VW.el("div", {}, VWVenue.badges(v, alerts))),
      cell(1, todayCell(v)), cell(2, armingCell(v)), cell(3, doors(v)), cell(4, deviceCell(v)));
  }

  // "3 个场所 · 告警 1 · 离线 1": what a folded node hides.
  function tally(list) {
    const alerts = list.filter((v) => alertCount(v.id) > 0).length;
    const down = list.filter((v) => VWVenue.states(v, 0).includes("offline")).length;
    return VW.el("span", { class: "node-tally" }, t("venue_count", { n: list.length }),
      alerts ? VW.el("span", { class: "state-badge state-alert" }, t("tally.alert", { n: alerts })) : null,
      down ? VW.el("span", { class: "state-badge state-offline" }, t("tally.offline", { n: down })) : null);
  }

  // One node of the tree: a <details> (keyboard-operable by itself) that remembers being folded.
  function node(key, level, name, list, ...children) {
    const details = VW.el("details", { class: `tree-node tree-${level}`, "data-node": key },
      VW.el("summary", {}, VW.el("span", { class: "node-name" }, name), tally(list)), ...children);
    details.open = !folded.has(key);
    details.addEventListener("toggle", () => { if (details.open) { folded.delete(key); } else { folded.add(key); } });
    return details;
  }

  // Venues grouped by township, then village, in the inventory's order.
  function grouped(list) {
    const townships = new Map();
    for (const v of list) {
      if (!townships.has(v.township)) { townships.set(v.township, { name: v.township_name, villages: new Map() }); }
      const villages = townships.get(v.township).villages;
      if (!villages.has(v.village)) { villages.set(v.village, { name: v.village_name, venues: [] }); }
      villages.get(v.village).venues.push(v);
    }
    return townships;
  }

  function table(list) {
    return VW.el("table", { class: "venues cards" }, VW.el("thead", {}, head.content.cloneNode(true)),
                 VW.el("tbody", {}, ...list.map(row)));
  }

  function matches(v) {
    if (pickTownship.value && v.township !== pickTownship.value) { return false; }
    if (pickState.value && !VWVenue.states(v, alertCount(v.id)).includes(pickState.value)) { return false; }
    const text = search.value.trim().toLowerCase();
    return !text || [v.name, v.village_name, v.township_name, v.id].some((s) => (s || "").toLowerCase().includes(text));
  }

  function townshipChoices() {
    const chosen = pickTownship.value;
    const all = pickTownship.options[0];
    const townships = grouped([...venues.values()]);
    pickTownship.replaceChildren(all, ...[...townships].map(([id, tw]) => VW.el("option", { value: id }, tw.name)));
    pickTownship.value = townships.has(chosen) ? chosen : "";
    // A township's own staff see one township: nothing to choose.
    pickTownship.closest("label").hidden = townships.size < 2;
  }

  // A re-render replaces the rows: put keyboard focus back on the same control of the same venue.
  function focused() {
    const spot = document.activeElement;
    const tr = spot && spot.closest ? spot.closest("tr[data-venue-id]") : null;
    return tr && board.contains(tr) && spot.classList.length ? { id: tr.dataset.venueId, cls: spot.classList[0] } : null;
  }

  function refocus(spot) {
    const target = spot && board.querySelector(`tr[data-venue-id="${spot.id}"] .${spot.cls}`);
    if (target) { target.focus(); }
  }

  function render() {
    const spot = focused();
    const shown = [...venues.values()].filter(matches);
    shownCount.textContent = t("shown", { n: shown.length, total: venues.size });
    if (!shown.length) {
      board.replaceChildren(VW.el("p", { class: "empty-state" }, t(venues.size ? "no_match" : "no_venues")));
      return;
    }
    const townships = [...grouped(shown)].map(([id, tw]) => {
      const villages = [...tw.villages].map(([vid, vi]) => node(`village:${vid}`, "village", vi.name, vi.venues,
                                                                 table(vi.venues)));
      return node(`township:${id}`, "township", tw.name, shown.filter((v) => v.township === id), ...villages);
    });
    board.replaceChildren(node("county", "county", config.county, shown, ...townships));
    refocus(spot);
  }

  // Live updates that arrive while reload() waits for its lists, which may have been read before them: one
  // list of [handler, update] per reload in progress, replayed onto the fresh lists (updates set a state, so
  // replaying one the lists already hold changes nothing).
  const collecting = new Set();

  function onState(change) {
    for (const live of collecting) { live.push([onState, change]); }
    const v = venues.get(change.venue);
    if (!v) { return; }
    VWVenue.apply(v, change);
    render();
  }

  function onAlert(alert) {
    for (const live of collecting) { live.push([onAlert, alert]); }
    if (alert.status === "resolved") { active.delete(alert.id); } else { active.set(alert.id, alert.venue); }
    render();
  }

  async function reload() {
    const live = [];
    collecting.add(live);
    let data, open, acked;
    try {
      [data, open, acked] = await Promise.all([
        VW.api("/venues"), VW.api("/alerts?status=open&limit=1000"), VW.api("/alerts?status=acked&limit=1000")]);
    } finally {
      collecting.delete(live);
    }
    venues = new Map(data.venues.map((v) => [v.id, v]));
    active.clear();
    for (const a of [...open.alerts, ...acked.alerts]) { active.set(a.id, a.venue); }
    townshipChoices();
    for (const [handler, update] of live) { handler(update); }
    render();
  }

  for (const control of [pickTownship, pickState]) { control.addEventListener("change", render); }
  search.addEventListener("input", render);
  document.getElementById("expand-all").addEventListener("click", () => { folded.clear(); render(); });
  document.getElementById("collapse-all").addEventListener("click", () => {
    board.querySelectorAll("details.tree-township, details.tree-village").forEach((d) => folded.add(d.dataset.node));
    render();
  });

  VW.live({ state: onState, alert: onAlert }, reload);
  reload();
  // "Open to the public now" and scheduled arming change with the clock, not with events: refresh every minute.
  setInterval(reload, 60000);
})();
