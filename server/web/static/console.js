// 告警页: open and acknowledged alerts, updated live; acknowledge with a note, resolve with an outcome.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const rows = document.getElementById("alert-rows");
  const resolvedRows = document.getElementById("resolved-rows");
  const count = document.getElementById("open-count");
  const SEVERITY = { high: "高", medium: "中", low: "低" };
  const STATUS = { open: "未确认", acked: "已确认", resolved: "已处置" };
  const RANK = { high: 0, medium: 1, low: 2 };
  const alerts = new Map();
  let totalActive = 0;

  function actions(alert) {
    if (!config.canAct || alert.status === "resolved") { return ""; }
    const cell = VW.el("div", { class: "actions" });
    const note = VW.el("input", { type: "text", placeholder: "备注", "aria-label": "备注", class: "note" });
    cell.append(note);
    if (alert.status === "open") {
      cell.append(VW.el("button", { type: "button", class: "ack", onclick: () => act(alert, "ack", { note: note.value }) }, "确认"));
    }
    const outcome = VW.el("select", { "aria-label": "处置结果", class: "outcome" });
    outcome.innerHTML = document.getElementById("outcome-options").innerHTML;
    cell.append(outcome, VW.el("button", { type: "button", class: "resolve", onclick: () => {
      if (!outcome.value) { outcome.focus(); outcome.classList.add("missing"); return; }
      act(alert, "resolve", { outcome: outcome.value, note: note.value });
    } }, "处置"));
    return cell;
  }

  async function act(alert, verb, body) {
    try {
      upsert(await VW.api(`/alerts/${alert.id}/${verb}`, { method: "POST", body }));
    } catch (err) {
      window.alert("操作失败：" + err.message);
      reload();
    }
  }

  function where(a) {
    return [a.township_name, a.village_name, a.venue_name].filter(Boolean).join(" · ");
  }

  // What duty staff must know to judge an alert: it arrived late, its time is an estimate, a link flaps.
  function notes(a) {
    const d = a.detail || {};
    const out = [];
    if (d.late) { out.push(`迟报：发生于 ${VW.time(d.occurred_at)}，${d.late_minutes} 分钟后才收到`); }
    if (d.time_source === "estimated" || d.time_source === "approximate") {
      out.push(d.time_source === "estimated" ? "设备时钟未同步，时间为估算" : "设备时钟未同步，时间为近似值");
    }
    if (d.drops > 1) { out.push(`掉线 ${d.drops} 次${d.flapping ? "，网络不稳定" : ""}`); }
    if (d.reason === "silent") { out.push("心跳中断"); }
    if (d.skew_s !== undefined) { out.push(`设备时钟偏差 ${Math.round(d.skew_s)} 秒`); }
    if (d.missing) { out.push(`缺失 ${d.missing} 条`); }
    return out.length ? VW.el("div", { class: "alert-notes" }, out.join("；")) : null;
  }

  function row(a) {
    return VW.el("tr", { "data-alert-id": a.id, class: `sev-${a.severity} st-${a.status}` },
      VW.el("td", {}, VW.time(a.opened_at)),
      VW.el("td", {}, VW.el("span", { class: `badge sev-${a.severity}` }, SEVERITY[a.severity] || a.severity)),
      VW.el("td", {}, a.title || a.rule, notes(a)),
      VW.el("td", {}, where(a)),
      VW.el("td", {}, [a.device, a.sensor].filter(Boolean).join(" / ")),
      VW.el("td", {}, STATUS[a.status] + (a.acked_by ? `（${a.acked_by}）` : "")),
      VW.el("td", {}, actions(a)));
  }

  function resolvedRow(a) {
    const outcome = config.outcomes[a.outcome] || (a.outcome === "condition_cleared" ? "已自动恢复" : a.outcome);
    return VW.el("tr", { "data-alert-id": a.id },
      VW.el("td", {}, VW.time(a.resolved_at)), VW.el("td", {}, a.title || a.rule),
      VW.el("td", {}, where(a)), VW.el("td", {}, outcome), VW.el("td", {}, a.resolved_by || ""));
  }

  function render() {
    const newest = (x, y) => y.opened_at.localeCompare(x.opened_at) || y.id - x.id;
    const all = [...alerts.values()].sort(newest);
    // Most severe first: a burst of offline devices must not push a door opening out of sight.
    const active = all.filter((a) => a.status !== "resolved")
      .sort((x, y) => (RANK[x.severity] ?? 9) - (RANK[y.severity] ?? 9) || newest(x, y));
    rows.replaceChildren(...(active.length ? active.map(row)
      : [VW.el("tr", { class: "empty" }, VW.el("td", { colspan: 7 }, "当前没有待处理告警"))]));
    resolvedRows.replaceChildren(...all.filter((a) => a.status === "resolved").slice(0, 20).map(resolvedRow));
    const shown = Math.max(active.length, totalActive);
    count.textContent = String(shown);
    count.title = shown > active.length ? `显示最新 ${active.length} 条，共 ${shown} 条` : "";
    document.title = (shown ? `(${shown}) ` : "") + "告警 · venuewatch";
  }

  let reloadTimer = null;

  function upsert(alert) {
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
    render();
  }

  async function reload() {
    const [open, acked, resolved] = await Promise.all(
      ["open", "acked", "resolved"].map((s) => VW.api(`/alerts?status=${s}&limit=200`)));
    alerts.clear();
    for (const a of [...open.alerts, ...acked.alerts, ...resolved.alerts.slice(0, 20)]) { alerts.set(a.id, a); }
    totalActive = open.total + acked.total;
    render();
  }

  VW.live({ alert: upsert }, reload);
  reload();
})();
