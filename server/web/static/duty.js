// 值班 panel on the alerts page: per duty room the running shift and who has checked in (签到), the handover
// notes (交班记录) with a form to write one, and the next shift. Also warns when holiday data is missing.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const panel = document.getElementById("shift-panel");
  const list = document.getElementById("shift-rooms");
  const warning = document.getElementById("holiday-warning");
  const drafts = new Map();  // room id → handover text being written: a refresh must not wipe it
  const FOLD_KEY = "vw.room-open.";  // + room id: "open" or "closed", as the user left the card
  const errors = new Map();  // room id → the last failed action's message
  const t = VW.t;
  let rooms = new Map();
  let me = "";

  function hhmm(iso) {
    return new Date(iso).toLocaleTimeString(VW.locale, VW.zoned({ hour: "2-digit", minute: "2-digit" }));
  }

  function day(iso) {
    return new Date(iso).toLocaleDateString(VW.locale, VW.zoned());
  }

  // "08:00–20:00", or "20:00–次日 08:00" for a shift that runs past midnight.
  function hours(shift) {
    const end = hhmm(shift.end);
    return `${hhmm(shift.start)}–${day(shift.end) !== day(shift.start) ? t("duty.next_day", { time: end }) : end}`;
  }

  function isOn(shift) {
    return shift.staff.some((p) => p.user === me);
  }

  function staffList(shift) {
    return VW.el("ul", { class: "staff-list" }, ...shift.staff.map((p) => {
      const checked = shift.checked_in.includes(p.user);
      const name = p.user === me ? t("duty.me", { name: p.name }) : p.name;
      return VW.el("li", { class: checked ? "staff checked-in" : "staff", "data-user": p.user },
        t(checked ? "duty.checked_in" : "duty.not_checked_in", { name }));
    }));
  }

  function currentShift(room, shift) {
    const canCheckIn = config.canAct && isOn(shift) && !shift.checked_in.includes(me);
    return VW.el("div", { class: "shift current-shift" },
      VW.el("div", { class: "shift-name" }, t("duty.current_shift", { name: shift.name, hours: hours(shift) })),
      staffList(shift),
      canCheckIn ? VW.el("button", { type: "button", class: "checkin primary",
                                     onclick: (ev) => checkin(ev.target, room) }, t("duty.checkin")) : null);
  }

  function nextShift(room) {
    if (!room.next.length) { return null; }
    const shifts = room.next.map((s) =>
      t("duty.shift_staff", { name: s.name, hours: hours(s), staff: VW.list(s.staff.map((p) => p.name)) }));
    return VW.el("p", { class: "next-shift" }, t("duty.next_shift", { shifts: VW.list(shifts, "item_sep") }));
  }

  function handoverNotes(room) {
    if (!room.handover.length) { return VW.el("p", { class: "muted" }, t("duty.no_handover")); }
    return VW.el("ul", { class: "handover-notes" }, ...room.handover.map((n) => VW.el("li", {},
      VW.el("div", { class: "note-meta" },
            t(n.from_previous_shift ? "duty.note_meta_previous" : "duty.note_meta",
              { name: n.name, time: VW.time(n.at) })),
      VW.el("div", { class: "note-text" }, n.text))));
  }

  function handoverForm(room, mine) {
    if (!config.canAct) { return null; }
    const text = VW.el("textarea", { class: "handover-text", rows: "2", maxlength: "4000",
                                     "aria-label": t("duty.handover_label"),
                                     placeholder: t("duty.handover_placeholder"),
                                     oninput: () => drafts.set(room.id, text.value) });
    text.value = drafts.get(room.id) || "";
    const form = VW.el("div", { class: "handover-form" }, text,
      VW.el("button", { type: "button", class: "handover-submit", onclick: (ev) => handover(ev.target, room, text) },
            t("duty.handover_submit")));
    // Someone not on this room's shift now (a county admin; the officer whose shift just ended) may still
    // write one, but the form should not take up their screen.
    if (mine) { return form; }
    const more = VW.el("details", { class: "handover-more" },
                       VW.el("summary", { class: "handover-open" }, t("duty.handover_open")), form);
    more.open = Boolean(text.value);  // a refresh must not fold away a note being written
    return more;
  }

  function summary(room) {
    const staff = room.current.flatMap((s) => s.staff);
    const checked = room.current.reduce((n, s) => n + s.checked_in.length, 0);
    const shifts = VW.list(room.current.map((s) => `${s.name} ${hours(s)}`)) || t("duty.no_shift");
    return VW.el("summary", { class: "room-head" },
      VW.el("span", { class: "room-name" }, room.name),
      VW.el("span", { class: checked || !staff.length ? "room-status" : "room-status unstaffed" },
        staff.length ? t("duty.checked_count", { shifts, n: checked, total: staff.length }) : shifts));
  }

  function roomCard(room) {
    const mine = room.current.some(isOn);
    const error = errors.get(room.id);
    const shifts = VW.el("div", { class: "room-shifts" },
      ...(room.current.length ? room.current.map((s) => currentShift(room, s))
        : [VW.el("p", { class: "warning" }, t("duty.no_shift"))]),
      error ? VW.el("p", { class: "form-error", role: "alert" }, error) : null,
      nextShift(room), room.leader ? VW.el("p", { class: "muted" }, t("duty.leader", { name: room.leader })) : null);
    const notes = VW.el("div", { class: "room-handover" },
      VW.el("h3", {}, t("duty.handover")), handoverNotes(room), handoverForm(room, mine));
    const head = summary(room);
    const card = VW.el("details", { class: "room", "data-room-id": room.id }, head,
      VW.el("div", { class: "room-body" }, shifts, notes));
    const folded = localStorage.getItem(FOLD_KEY + room.id);
    card.open = folded === null ? mine || rooms.size === 1 : folded === "open";
    // Remembered across reloads: an officer who folds the panel away wants the alerts on screen tomorrow too.
    // Only the user's own click counts (the toggle event fires for our programmatic `open` as well); the
    // click runs before the details element toggles.
    head.addEventListener("click", () => localStorage.setItem(FOLD_KEY + room.id, card.open ? "closed" : "open"));
    return card;
  }

  // A refresh replaces the cards: put focus (and the caret in the handover text) back where it was.
  function focused() {
    const node = document.activeElement;
    const card = node && node.closest ? node.closest("[data-room-id]") : null;
    if (!card || !list.contains(card) || !node.classList.length) { return null; }
    return { room: card.dataset.roomId, cls: node.classList[0], caret: node.selectionStart };
  }

  function refocus(spot) {
    const node = spot && list.querySelector(`[data-room-id="${spot.room}"] .${spot.cls}`);
    if (!node) { return; }
    node.focus();
    if (typeof spot.caret === "number" && node.setSelectionRange) { node.setSelectionRange(spot.caret, spot.caret); }
  }

  function render() {
    panel.hidden = rooms.size === 0;
    const spot = focused();
    list.replaceChildren(...[...rooms.values()].map(roomCard));
    refocus(spot);
  }

  function update(view) {
    rooms.set(view.id, view);
    errors.delete(view.id);
    render();
  }

  function fail(room, message) {
    errors.set(room.id, message);
    render();
  }

  // Disabling a pressed button takes the keyboard focus away: give it back to the same control after the
  // update, or (签到 is gone once done) to the room's heading.
  function keepFocus(spot) {
    if (!spot || list.contains(document.activeElement)) { return; }
    refocus(spot);
    if (!list.contains(document.activeElement)) {
      list.querySelector(`[data-room-id="${spot.room}"] > summary`)?.focus();
    }
  }

  async function checkin(button, room) {
    const spot = focused();
    button.disabled = true;  // a double tap must not post twice
    try {
      update(await VW.api(`/duty/${encodeURIComponent(room.id)}/checkin`, { method: "POST", body: {} }));
    } catch (err) {
      fail(room, t("duty.checkin_failed", { error: err.message }));
    }
    keepFocus(spot);
  }

  async function handover(button, room, text) {
    if (!text.value.trim()) {
      fail(room, t("duty.handover_empty"));
      return;
    }
    const spot = focused();
    button.disabled = true;
    try {
      const view = await VW.api(`/duty/${encodeURIComponent(room.id)}/handover`,
                                { method: "POST", body: { text: text.value } });
      drafts.delete(room.id);
      update(view);
    } catch (err) {
      fail(room, t("duty.submit_failed", { error: err.message }));
    }
    keepFocus(spot);
  }

  function showHolidayWarning(years) {
    warning.hidden = !years.length;
    warning.textContent = years.length ? t("duty.holiday_missing", { years: VW.list(years) }) : "";
  }

  async function reload() {
    let data;
    try {
      data = await VW.api("/duty");
    } catch (err) {
      return;  // the alert list matters more than this panel; the next refresh tries again
    }
    me = data.me;
    showHolidayWarning(data.holiday_data_missing || []);
    rooms = new Map(data.rooms.map((r) => [r.id, r]));
    render();
  }

  reload();
  // Shifts change with the clock, not with events: refresh every minute and when a sleeping tablet wakes.
  setInterval(reload, 60000);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { reload(); } });
})();
