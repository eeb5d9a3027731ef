// A venue's state at a glance, shared by the 场所 board and the venue page: the state badges (告警, 离线,
// 开放中, 正常, and 布防/撤防), always a word beside the colour, and a device's supervision line.
"use strict";

const VWVenue = (() => {
  const t = VW.t;

  // The translated word of `prefix.id`, or the id itself when the catalog has none (a new state).
  function word(prefix, id) {
    return t(`${prefix}.${id}`) === `${prefix}.${id}` ? id : t(`${prefix}.${id}`);
  }

  function offline(v) {
    return Object.values(v.devices).some((d) => d.status === "offline");
  }

  // The states a venue is in, worst first: alert (unresolved alerts), offline (a device), open (to the public
  // now), ok (neither alert nor offline); then armed or disarmed, which every venue is.
  function states(v, alerts) {
    const out = [];
    if (alerts > 0) { out.push("alert"); }
    if (offline(v)) { out.push("offline"); }
    if (!out.length) { out.push("ok"); }
    if (v.open_now) { out.push("open"); }
    out.push(v.armed ? "armed" : "disarmed");
    return out;
  }

  function badges(v, alerts) {
    return VW.el("span", { class: "state-badges" }, ...states(v, alerts).map((s) =>
      VW.el("span", { class: `state-badge state-${s}`, "data-state": s },
            s === "alert" && alerts > 1 ? t("state.alert_n", { n: alerts }) : t(`state.${s}`))));
  }

  // Supervision: since when, last heartbeat, what waits in the Pi's journal, the 4G signal, its clock.
  function health(d) {
    const parts = [];
    if (d.status_at) {
      parts.push(t("status_since", { status: word("device", d.status), time: VW.time(d.status_at) }));
    }
    if (d.last_seen) { parts.push(t("last_seen", { time: VW.time(d.last_seen) })); }
    if (d.journal_backlog) { parts.push(t("backlog", { n: d.journal_backlog })); }
    if (d.signal_pct !== null && d.signal_pct !== undefined) { parts.push(t("signal", { pct: `${d.signal_pct}%` })); }
    if (d.clock_skew_s !== null && d.clock_skew_s !== undefined && Math.abs(d.clock_skew_s) > 120) {
      parts.push(t("clock_skew", { s: Math.round(d.clock_skew_s) }));
    }
    if (d.gap_since) { parts.push(t("gap_since", { time: VW.time(d.gap_since) })); }
    return parts;
  }

  // A live `state` message (GET /api/v1/stream) applied to a venue of GET /api/v1/venues.
  function apply(v, change) {
    if (change.status) {
      v.devices[change.device] = { ...(v.devices[change.device] || {}), status: change.status, status_at: change.since };
      return;
    }
    const i = v.sensors.findIndex((s) => s.device === change.device && s.sensor === change.sensor);
    const entry = { device: change.device, sensor: change.sensor, kind: change.kind, state: change.state,
                    since: change.since };
    if (i >= 0) { v.sensors[i] = entry; } else { v.sensors.push(entry); }
  }

  return { word, states, badges, health, apply };
})();
