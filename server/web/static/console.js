// 告警页: open and acknowledged alerts, updated live. Most severe first, a countdown to each incident's next
// escalation step, one-click acknowledge (per alert or per incident), resolve with an outcome, details with
// the venue's recent events and the alert's snapshots, and an optional alarm sound for critical alerts.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const rows = document.getElementById("alert-rows");
  const resolvedRows = document.getElementById("resolved-rows");
  const count = document.getElementById("open-count");
  const t = VW.t;
  const RANK = { critical: 0, high: 1, medium: 2, low: 3 };
  // A card's labels (narrow screens) are the table's own headings, in the page's language.
  const HEADINGS = [...document.querySelectorAll("table.alerts:not(.resolved) thead th")].map((th) => th.textContent);
  const RESOLVED_HEADINGS = [...document.querySelectorAll("table.resolved thead th")].map((th) => th.textContent);
  const alerts = new Map();
  // Typed notes and chosen outcomes per alert: a live alert re-renders the list and must not wipe them.
  const drafts = new Map();
  // Open detail panels per alert id, kept across re-renders so they are loaded once.
  const details = new Map();
  let totalActive = 0;
  let clockOffset = 0;  // server clock minus this PC's clock, in ms

  // --- escalation countdown ----------------------------------------------------------------------------

  function serverNow() {
    return Date.now() + clockOffset;
  }

  // Township PCs often run with a wrong clock: count down against the server's clock (its Date header).
  async function syncClock() {
    try {
      const sent = Date.now();
      const response = await fetch("/api/v1/outcomes", { method: "HEAD", credentials: "same-origin" });
      const server = Date.parse(response.headers.get("Date") || "");
      // The header has whole seconds: +500 ms is the expected truncation.
      if (server) { clockOffset = server + 500 - (sent + Date.now()) / 2; }
    } catch (err) {
      // Offline for a moment: the last estimate stays (it starts at 0, this PC's own clock).
    }
  }

  function clock(seconds) {
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function known(key) {
    return t(key) !== key;
  }

  // An alert's title in the page's language, by its rule (the API's title is the Chinese one).
  function title(a) {
    const state = a.detail && a.detail.state;
    if (a.rule === "camera_tamper" && state && known(`tamper_title.${state}`)) { return t(`tamper_title.${state}`); }
    return known(`rule.${a.rule}`) ? t(`rule.${a.rule}`) : (a.title || a.rule);
  }

  function firedName(step, fallback) {
    return known(`fired.${step}`) ? t(`fired.${step}`) : fallback;
  }

  // "1:59 后升级：再次提醒值班人员", "已升级（已再次提醒）· 7:59 后升级至乡镇负责人", "已升级（…）".
  function escalationText(a) {
    const fired = ((a.incident && a.incident.escalated) || []).map((step) => firedName(step, step));
    const next = a.escalation;
    if (next) {
      const left = Math.ceil((Date.parse(next.due_at) - serverNow()) / 1000);
      if (left <= 0) {
        // Due: the server takes the step within seconds and then announces the alert again.
        fired.push(firedName(next.step, next.title));
      } else {
        const what = known(`next.${next.step}`) ? t(`next.${next.step}`) : t("next.other", { title: next.title });
        const countdown = t("countdown", { time: clock(left), what });
        return { text: fired.length ? t("escalated_then", { steps: VW.list(fired), countdown }) : countdown,
                 urgent: left <= 60 };
      }
    }
    return { text: fired.length ? t("escalated", { steps: VW.list(fired) }) : "", urgent: false };
  }

  function showEscalation(node, alert) {
    const { text, urgent } = escalationText(alert);
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle("urgent", urgent && alert.status === "open");
  }

  // One timer rewrites every countdown from the due times already loaded: no refetch each second.
  function tick() {
    for (const node of rows.querySelectorAll(".countdown")) {
      const alert = alerts.get(Number(node.dataset.alertId));
      if (alert) { showEscalation(node, alert); }
    }
  }

  // --- alarm sound -------------------------------------------------------------------------------------

  // Browsers let a page make sound only after a user gesture, so sound starts off: the 开启声音 button
  // enables it and the choice is remembered. On a later visit the first click or key press re-enables it.
  function alarmSound(button) {
    const KEY = "vw.sound";
    let on = localStorage.getItem(KEY) === "on";
    let audio = null;

    function unlock() {
      try {
        audio = audio || new (window.AudioContext || window.webkitAudioContext)();
        if (audio.state === "suspended") { audio.resume().catch(() => {}); }  // refused without a gesture
      } catch (err) {
        audio = null;  // no WebAudio in this browser: the list still shows everything
      }
    }

    function show() {
      button.setAttribute("aria-pressed", String(on));
      button.title = on ? t("sound.title_on") : t("sound.title");
    }

    // Three short beeps, generated here: no audio file to ship, nothing the CSP must allow.
    function beep() {
      if (!on || !audio) { return; }
      const start = audio.currentTime + 0.05;
      for (let i = 0; i < 3; i += 1) {
        const at = start + i * 0.3;
        const tone = audio.createOscillator();
        const gain = audio.createGain();
        tone.type = "square";
        tone.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.2);
        tone.connect(gain).connect(audio.destination);
        tone.start(at);
        tone.stop(at + 0.22);
      }
    }

    button.addEventListener("click", () => {
      on = !on;
      localStorage.setItem(KEY, on ? "on" : "off");
      if (on) { unlock(); beep(); }  // beeping at once tells staff the speakers work
      show();
    });
    if (on) {
      document.addEventListener("pointerdown", unlock, { once: true });
      document.addEventListener("keydown", unlock, { once: true });
    }
    show();
    return { beep };
  }

  const sound = alarmSound(document.getElementById("sound-toggle"));

  // --- actions -----------------------------------------------------------------------------------------

  function draft(alert) {
    if (!drafts.has(alert.id)) { drafts.set(alert.id, { note: "", outcome: "" }); }
    return drafts.get(alert.id);
  }

  // Alerts of a duty room (值班无人签到) belong to no venue; the API refuses actions on them and they
  // resolve themselves when someone checks in.
  function hasVenue(a) {
    return Boolean(a.village_name);
  }

  // The controls of one alert: acknowledge, the details toggle (`more`), resolve; in that order on screen.
  function actions(alert, incidentLead, more) {
    if (!config.canAct || alert.status === "resolved") { return [more]; }
    if (!hasVenue(alert)) { return [VW.el("div", { class: "alert-notes" }, t("self_resolving")), more]; }
    const saved = draft(alert);
    const note = VW.el("input", { type: "text", placeholder: t("note.placeholder"), "aria-label": t("note.label"),
                                  class: "note", maxlength: "2000", oninput: () => { saved.note = note.value; } });
    note.value = saved.note;
    const controls = [note];
    if (alert.status === "open") {
      controls.push(VW.el("button", { type: "button", class: "ack",
        onclick: (ev) => act(ev.target, `/alerts/${alert.id}/ack`, { note: note.value }, alert) }, t("ack")));
    }
    if (incidentLead) {
      controls.push(VW.el("button", { type: "button", class: "ack-incident", title: t("ack_incident.title"),
        onclick: (ev) => act(ev.target, `/incidents/${alert.incident_id}/ack`, { note: note.value }, alert) },
        t("ack_incident")));
    }
    const outcome = VW.el("select", { "aria-label": t("outcome.label"), class: "outcome",
      onchange: () => { saved.outcome = outcome.value; outcome.classList.remove("missing"); } });
    outcome.innerHTML = document.getElementById("outcome-options").innerHTML;
    outcome.value = saved.outcome;
    const resolve = VW.el("button", { type: "button", class: "resolve", onclick: (ev) => {
      if (!outcome.value) { outcome.focus(); outcome.classList.add("missing"); return; }
      act(ev.target, `/alerts/${alert.id}/resolve`, { outcome: outcome.value, note: note.value }, alert);
    } }, t("resolve"));
    return [...controls, more, VW.el("div", { class: "resolve-group" }, outcome, resolve)];
  }

  async function act(button, path, body, alert) {
    const spot = focused();  // disabling the button takes the keyboard focus away: given back below
    button.disabled = true;  // a double tap on a tablet must not post twice
    try {
      const result = await VW.api(path, { method: "POST", body });
      drafts.delete(alert.id);
      const changed = result.acked || [result];
      changed.forEach(upsert);
      if (!changed.length) { render(); }  // someone else was quicker: re-enable the button
      if (spot && !rows.contains(document.activeElement)) {
        // The same alert's row, or (resolved, so gone) the alert now on top of the list.
        refocus(spot);
        if (!rows.contains(document.activeElement)) { rows.querySelector("input, select, button")?.focus(); }
      }
    } catch (err) {
      window.alert(t("op_failed", { error: err.message }));
      reload();
    }
  }

  // --- rows --------------------------------------------------------------------------------------------

  // Today's alerts show the time only, older ones the date too; the full time is in the tooltip.
  function shortTime(iso) {
    const zone = VW.zoned();
    const at = new Date(iso);
    const today = at.toLocaleDateString(VW.locale, zone) === new Date(serverNow()).toLocaleDateString(VW.locale, zone);
    return today ? at.toLocaleTimeString(VW.locale, zone)
      : at.toLocaleString(VW.locale,
                          VW.zoned({ month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" }));
  }

  function where(a) {
    return [a.township_name, a.village_name, a.venue_name].filter(Boolean).join(" · ");
  }

  // What duty staff must know to judge an alert: it arrived late, its time is an estimate, a link flaps.
  function notes(a) {
    const d = a.detail || {};
    const out = [];
    if (d.late) { out.push(t("late", { time: VW.time(d.occurred_at), minutes: d.late_minutes })); }
    if (d.time_source === "estimated" || d.time_source === "approximate") {
      out.push(t(d.time_source === "estimated" ? "time_estimated" : "time_approximate"));
    }
    if (d.drops > 1) { out.push(t(d.flapping ? "drops_flapping" : "drops", { n: d.drops })); }
    if (d.reason === "silent") { out.push(t("silent")); }
    if (d.skew_s !== undefined) { out.push(t("device_skew", { s: Math.round(d.skew_s) })); }
    if (d.missing) { out.push(t("missing", { n: d.missing })); }
    if (a.rule === "motion_armed" && d.count) { out.push(t("motion_count", { n: d.count })); }
    if (a.rule === "shift_unstaffed" && d.shift) {
      out.push(t("unstaffed", { room: d.room_name || "", shift: d.shift }));
    }
    return out.length ? VW.el("div", { class: "alert-notes" }, VW.list(out, "item_sep")) : null;
  }

  // The incidents on screen: size (the largest count any member reported) and the open members.
  function incidentsOf(active) {
    const found = new Map();
    for (const a of active) {
      if (!a.incident_id) { continue; }
      const entry = found.get(a.incident_id) || { size: 0, open: [] };
      entry.size = Math.max(entry.size, a.incident ? a.incident.alerts : 1);
      if (a.status === "open" && hasVenue(a)) { entry.open.push(a); }
      found.set(a.incident_id, entry);
    }
    return found;
  }

  function incidentLabel(a, incident) {
    if (!incident || incident.size < 2) { return null; }
    return VW.el("div", { class: "incident", "data-incident-id": a.incident_id },
                 t("incident_size", { n: incident.size }));
  }

  function detailsButton(a) {
    const open = details.has(a.id);
    return VW.el("button", { type: "button", class: "details", "aria-expanded": String(open),
                             "aria-controls": `details-${a.id}`, onclick: () => toggleDetails(a) },
                 t(open ? "details.hide" : "details.show"));
  }

  function cell(index, ...children) {
    return VW.el("td", { "data-label": HEADINGS[index] }, ...children);
  }

  function row(a, incident) {
    const countdown = VW.el("div", { class: "countdown", "data-alert-id": a.id, role: "timer" });
    showEscalation(countdown, a);
    const lead = Boolean(config.canAct && incident && incident.open.length > 1 && incident.open[0] === a);
    return VW.el("tr", { "data-alert-id": a.id, class: `sev-${a.severity} st-${a.status}` },
      cell(0, VW.el("time", { datetime: a.opened_at, title: VW.time(a.opened_at) }, shortTime(a.opened_at))),
      cell(1, VW.el("span", { class: `badge sev-${a.severity}` },
                    known(`severity.${a.severity}`) ? t(`severity.${a.severity}`) : a.severity)),
      cell(2, VW.el("div", { class: "alert-title" }, title(a)), notes(a), countdown,
           incidentLabel(a, incident)),
      cell(3, where(a)),
      cell(4, [a.device, a.sensor].filter(Boolean).join(" / ")),
      cell(5, a.acked_by ? t("status_by", { status: t(`status.${a.status}`), user: a.acked_by })
        : t(`status.${a.status}`)),
      cell(6, VW.el("div", { class: "actions" }, ...actions(a, lead, detailsButton(a)))));
  }

  function detailsRow(a) {
    return VW.el("tr", { class: "details-row", id: `details-${a.id}`, "data-details-for": a.id },
      VW.el("td", { colspan: 7 }, details.get(a.id)));
  }

  function resolvedRow(a) {
    const outcome = config.outcomes[a.outcome] || (a.outcome === "condition_cleared" ? t("outcome.auto") : a.outcome);
    const td = (i, ...children) => VW.el("td", { "data-label": RESOLVED_HEADINGS[i] }, ...children);
    return VW.el("tr", { "data-alert-id": a.id },
      td(0, VW.time(a.resolved_at)), td(1, title(a)), td(2, where(a)), td(3, outcome), td(4, a.resolved_by || ""));
  }

  // A re-render replaces the rows: put keyboard focus back on the same control of the same alert.
  function focused() {
    const node = document.activeElement;
    const tr = node && node.closest ? node.closest("tr[data-alert-id]") : null;
    return tr && rows.contains(tr) && node.classList.length ? { id: tr.dataset.alertId, cls: node.classList[0] } : null;
  }

  // The control itself may be gone (an acknowledged alert has no 确认 button): then the row's first control,
  // so a keyboard user goes on from the same alert instead of from the top of the page.
  function refocus(spot) {
    if (!spot) { return; }
    const tr = rows.querySelector(`tr[data-alert-id="${spot.id}"]`);
    const node = tr && (tr.querySelector(`.${spot.cls}`) || tr.querySelector("input, select, button"));
    if (node) { node.focus(); }
  }

  function render() {
    const spot = focused();
    const newest = (x, y) => y.opened_at.localeCompare(x.opened_at) || y.id - x.id;
    const all = [...alerts.values()].sort(newest);
    // Most severe first: a burst of offline devices must not push a door opening out of sight.
    const active = all.filter((a) => a.status !== "resolved")
      .sort((x, y) => (RANK[x.severity] ?? 9) - (RANK[y.severity] ?? 9) || newest(x, y));
    const incidents = incidentsOf(active);
    const shown = active.flatMap((a) => (details.has(a.id) ? [row(a, incidents.get(a.incident_id)), detailsRow(a)]
      : [row(a, incidents.get(a.incident_id))]));
    rows.replaceChildren(...(active.length ? shown
      : [VW.el("tr", { class: "empty" }, VW.el("td", { colspan: 7 }, t("no_alerts")))]));
    resolvedRows.replaceChildren(...all.filter((a) => a.status === "resolved").slice(0, 20).map(resolvedRow));
    const total = Math.max(active.length, totalActive);
    count.textContent = String(total);
    count.title = total > active.length ? t("showing", { shown: active.length, total }) : "";
    document.title = `${total ? `(${total}) ` : ""}${t("page_title")} · venuewatch`;
    refocus(spot);
  }

  // --- details: the venue's recent events and the alert's snapshots ------------------------------------

  const word = (prefix, id) => (known(`${prefix}.${id}`) ? t(`${prefix}.${id}`) : id);

  function toggleDetails(a) {
    if (details.has(a.id)) {
      details.delete(a.id);
    } else {
      const panel = VW.el("div", { class: "details-panel" }, t("loading"));
      details.set(a.id, panel);
      fillDetails(panel, a);
    }
    render();
  }

  async function fillDetails(panel, a) {
    const [events, pictures] = await Promise.all([recentEvents(a), snapshots(a)]);
    panel.replaceChildren(
      VW.el("section", { class: "recent-events" }, VW.el("h3", {}, t("recent_events")), events),
      VW.el("section", { class: "snapshots" }, VW.el("h3", {}, t("snapshots")), pictures));
  }

  async function recentEvents(a) {
    if (!hasVenue(a)) { return VW.el("p", {}, t("no_venue_events")); }
    try {
      const data = await VW.api(`/events?venue=${encodeURIComponent(a.venue)}`);
      const mine = new Set(a.event_ids || []);
      const items = data.events.slice(0, 10).map((e) => VW.el("li", { class: mine.has(e.id) ? "this-alert" : "" },
        t("event_line", { time: VW.time(e.occurred_at), kind: word("kind", e.kind), sensor: e.sensor,
                          state: word("state", e.state) })));
      return items.length ? VW.el("ol", { class: "event-list" }, ...items) : VW.el("p", {}, t("no_events"));
    } catch (err) {
      return VW.el("p", { class: "error" }, t("events_failed", { error: err.message }));
    }
  }

  async function snapshots(a) {
    // A motion alert piles up many events: the latest few pictures are enough to judge it.
    const ids = (a.event_ids || []).slice(-6);
    try {
      const lists = await Promise.all(ids.map((id) => VW.api(`/events/${encodeURIComponent(id)}/snapshots`)));
      const shots = lists.flatMap((l) => l.snapshots);
      if (!shots.length) { return VW.el("p", { class: "no-snapshot" }, t("no_snapshot")); }
      return VW.el("div", { class: "thumbs" }, ...shots.map((s) =>
        VW.el("a", { href: s.url, target: "_blank", rel: "noopener", title: t("view_original") },
          VW.el("img", { class: "thumb", src: s.url, alt: t("snapshot_alt", { time: VW.time(s.received_at) }),
                         loading: "lazy" }))));
    } catch (err) {
      return VW.el("p", { class: "error" }, t("snapshots_failed", { error: err.message }));
    }
  }

  // --- live updates ------------------------------------------------------------------------------------

  let reloadTimer = null;
  // Live updates that arrive while reload() waits for the lists: the lists may have been read before them.
  const collecting = new Set();  // one Map (alert id -> alert) per reload() in progress

  function upsert(alert) {
    for (const live of collecting) { live.set(alert.id, alert); }
    const before = alerts.get(alert.id);
    if (!before && alert.status !== "open") {
      // A change to an alert beyond the loaded page: only the server knows the new total.
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(reload, 1000);
      return;
    }
    const wasActive = before ? before.status !== "resolved" : false;
    const isActive = alert.status !== "resolved";
    totalActive += (isActive ? 1 : 0) - (wasActive ? 1 : 0);
    alerts.set(alert.id, alert);
    if (!isActive) { details.delete(alert.id); drafts.delete(alert.id); }
    render();
    return !before;
  }

  const announcer = document.getElementById("alert-announce");

  function onLiveAlert(alert) {
    const isNew = upsert(alert);
    if (isNew && alert.status === "open") { announcer.textContent = `${title(alert)} · ${where(alert)}`; }
    if (isNew && alert.severity === "critical" && alert.status === "open") { sound.beep(); }
  }

  let loaded = false;

  const STAGE = { open: 0, acked: 1, resolved: 2 };

  // An alert announced while the lists were being read is kept (or its newer state), not wiped by them.
  function keepLive(live, loadedAlerts) {
    for (const a of live.values()) {
      const listed = loadedAlerts.get(a.id);
      if (listed && STAGE[listed.status] > STAGE[a.status]) { continue; }
      if (a.status === "resolved" && !listed) { continue; }
      const was = listed ? listed.status !== "resolved" : false;
      totalActive += (a.status !== "resolved" ? 1 : 0) - (was ? 1 : 0);
      loadedAlerts.set(a.id, a);
    }
  }

  async function reload() {
    const live = new Map();
    collecting.add(live);
    let open, acked, resolved;
    try {
      [open, acked, resolved] = await Promise.all(
        ["open", "acked", "resolved"].map((s) => VW.api(`/alerts?status=${s}&limit=200`)));
    } finally {
      collecting.delete(live);
    }
    // A critical alert that arrived while the live connection was down deserves the alarm too; the
    // alerts already there when the page opened do not.
    const missed = loaded && open.alerts.some((a) => a.severity === "critical" && !alerts.has(a.id));
    alerts.clear();
    for (const a of [...open.alerts, ...acked.alerts, ...resolved.alerts.slice(0, 20)]) { alerts.set(a.id, a); }
    totalActive = open.total + acked.total;
    keepLive(live, alerts);
    for (const id of [...details.keys()]) { if (!alerts.has(id)) { details.delete(id); } }
    loaded = true;
    render();
    if (missed) { sound.beep(); }
  }

  VW.live({ alert: onLiveAlert }, () => { syncClock(); reload(); });
  syncClock().then(tick);
  reload();
  setInterval(tick, 1000);
})();
