// 报告页: the nightly report archive, grouped by day (newest first), one row per scope (the county, each
// township) with its latest revision and links to the HTML, PDF and CSV files; older revisions on request.
// The API lists only what the user may read, so the page shows whatever it is given.
"use strict";

(() => {
  const list = document.getElementById("report-days");
  const failure = document.getElementById("reports-error");
  const dayInput = document.getElementById("filter-day");
  const scopeSelect = document.getElementById("filter-scope");
  const langSelect = document.getElementById("filter-lang");
  const t = VW.t;
  const HEADINGS = [t("col.scope"), t("col.revision"), t("col.built"), t("col.files")];
  const WEEKDAY = new Intl.DateTimeFormat(VW.locale, { weekday: "short", timeZone: "UTC" });
  // The revision picked per report ("day/scope"): a filter change re-renders and must keep it.
  const picked = new Map();
  let reports = [];

  // "2026-11-25（周三）": the date is a calendar day, not a moment, so no time zone is involved.
  function dayLabel(day) {
    const [y, m, d] = day.split("-").map(Number);
    return t("day_label", { day, weekday: WEEKDAY.format(new Date(Date.UTC(y, m - 1, d))) });
  }

  function reasonName(reason) {
    return t(`reason.${reason}`) === `reason.${reason}` ? reason : t(`reason.${reason}`);
  }

  function fileUrl(r, fmt, revision) {
    const query = new URLSearchParams();
    if (revision !== r.revision) { query.set("revision", revision); }
    if (langSelect.value === "en") { query.set("lang", "en"); }
    const path = `/api/v1/reports/${encodeURIComponent(r.day)}/${encodeURIComponent(r.scope)}.${fmt}`;
    return query.toString() ? `${path}?${query}` : path;
  }

  function links(r, revision) {
    const tip = revision === r.revision ? t("open_tab") : t("open_tab_revision", { n: revision });
    return [
      VW.el("a", { class: "report-html", href: fileUrl(r, "html", revision), target: "_blank", rel: "noopener",
                   title: tip }, t("view")),
      VW.el("a", { class: "report-pdf", href: fileUrl(r, "pdf", revision), download: "" }, "PDF"),
      VW.el("a", { class: "report-csv", href: fileUrl(r, "csv", revision), download: "" }, "CSV"),
    ];
  }

  function filesCell(r) {
    const key = `${r.day}/${r.scope}`;
    const revision = picked.get(key) || r.revision;
    const files = VW.el("span", { class: "report-links" }, ...links(r, revision));
    if (r.revisions.length < 2) { return files; }
    const select = VW.el("select", { class: "report-revision",
                                     "aria-label": t("revision_label", { scope: r.scope_name, day: r.day }),
                                     onchange: () => {
                                       picked.set(key, Number(select.value));
                                       files.replaceChildren(...links(r, Number(select.value)));
                                     } },
      ...r.revisions.map((n) => VW.el("option", { value: n },
                                      t(n === r.revision ? "revision_latest" : "revision", { n }))));
    select.value = String(revision);
    return [files, VW.el("label", { class: "report-older" }, `${t("older")} `, select)];
  }

  function cell(index, ...children) {
    return VW.el("td", { "data-label": HEADINGS[index] }, ...children.flat());
  }

  function row(r) {
    return VW.el("tr", { "data-day": r.day, "data-scope": r.scope },
      cell(0, VW.el("span", { class: "scope-name" }, r.scope_name)),
      cell(1, VW.el("span", { class: "report-revision-label" },
                    t("revision_reason", { n: r.revision, reason: reasonName(r.reason) }))),
      cell(2, VW.time(r.built_at)),
      cell(3, filesCell(r)));
  }

  function render() {
    const day = dayInput.value;
    const scope = scopeSelect.value;
    const shown = reports.filter((r) => (!day || r.day === day) && (!scope || r.scope === scope));
    if (!shown.length) {
      list.replaceChildren(VW.el("p", { class: "empty-state" },
                                 t(reports.length ? "no_reports_filtered" : "no_reports")));
      return;
    }
    const days = new Map();
    for (const r of shown) {
      if (!days.has(r.day)) { days.set(r.day, []); }
      days.get(r.day).push(r);
    }
    // Newest day first; within a day the county before the townships.
    const sections = [...days.keys()].sort().reverse().map((d) => {
      const rows = days.get(d).sort((a, b) => (a.scope === "county" ? -1 : b.scope === "county" ? 1 : 0) ||
        a.scope_name.localeCompare(b.scope_name, "zh-CN"));
      const heading = `day-${d}`;
      return VW.el("section", { class: "report-day", "data-day": d, "aria-labelledby": heading },
        VW.el("h2", { id: heading }, dayLabel(d)),
        VW.el("table", { class: "reports cards" },
          VW.el("thead", {}, VW.el("tr", {}, ...HEADINGS.map((h) => VW.el("th", {}, h)))),
          VW.el("tbody", {}, ...rows.map(row))));
    });
    list.replaceChildren(...sections);
  }

  function scopeOptions() {
    const names = new Map(reports.map((r) => [r.scope, r.scope_name]));
    const chosen = scopeSelect.value;
    const scopes = [...names.keys()].sort((a, b) => (a === "county" ? -1 : b === "county" ? 1 : 0) ||
      names.get(a).localeCompare(names.get(b), "zh-CN"));
    scopeSelect.replaceChildren(VW.el("option", { value: "" }, t("all")),
      ...scopes.map((s) => VW.el("option", { value: s }, names.get(s))));
    scopeSelect.value = names.has(chosen) ? chosen : "";
  }

  async function load() {
    try {
      reports = (await VW.api("/reports")).reports;
      failure.hidden = true;
    } catch (err) {
      failure.textContent = t("list_failed", { error: err.message });
      failure.hidden = false;
      reports = [];
    }
    scopeOptions();
    render();
  }

  dayInput.addEventListener("change", render);
  scopeSelect.addEventListener("change", render);
  langSelect.addEventListener("change", render);
  document.getElementById("report-filters").addEventListener("reset", () => setTimeout(render));
  document.getElementById("report-filters").addEventListener("submit", (ev) => ev.preventDefault());
  load();
})();
