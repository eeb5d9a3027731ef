// Shared by the console pages: API calls with the CSRF token, the live stream, small DOM helpers, and the
// page's language: its words (t), dates and numbers (time, num, pct).
"use strict";

const VW = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  // The page's strings, translated by the server from its catalog (server/web/jsstrings.py): this file and the
  // page scripts hold no words of their own.
  const strings = JSON.parse(document.getElementById("vw-strings")?.textContent || "{}");
  const locale = document.documentElement.lang || "zh-CN";  // zh-CN or en-GB: Intl formats dates and numbers
  const timeZone = document.querySelector('meta[name="vw-tz"]')?.content || "Asia/Shanghai";

  // t("countdown", { time: "1:59", what: "…" }): the string of `key` with its {placeholders} filled in.
  function t(key, params = {}) {
    const text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  }

  // Items joined as the language lists them: 甲、乙 / a, b.
  function list(items, sep = "list_sep") {
    return items.join(t(sep));
  }

  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { "Accept": "application/json" }, ...options };
    if (init.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(init.body);
    }
    const response = await fetch("/api/v1" + path, init);
    if (response.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname); }
    const data = await response.json().catch(() => ({}));
    // `message` is in the page's language; `error` is the API's English for scripts.
    if (!response.ok) { throw new Error(data.message || data.error || ("HTTP " + response.status)); }
    return data;
  }

  // EventSource reconnects by itself after a network error and resends Last-Event-ID, but gives up for good
  // on any non-200 answer (a proxy's 502 while the server restarts, a 401 when the session expired). So we
  // watch it: while it is down a banner says so, a closed stream is reopened with backoff (after checking
  // the login), and onReconnect reloads the lists, which may have missed more than the stream replays.
  function live(handlers, onReconnect) {
    const banner = document.getElementById("conn-banner");
    let wasDown = false;
    let delay = 1000;

    function open() {
      const source = new EventSource("/api/v1/stream");
      source.onopen = () => {
        banner.hidden = true;
        delay = 1000;
        if (wasDown) { onReconnect(); }
        wasDown = false;
      };
      source.onerror = () => {
        banner.hidden = false;
        wasDown = true;
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(() => { api("/outcomes").then(open, open); }, delay);  // api() sends a 401 to /login
          delay = Math.min(delay * 2, 30000);
        }
      };
      for (const [type, fn] of Object.entries(handlers)) {
        source.addEventListener(type, (ev) => fn(JSON.parse(ev.data)));
      }
      source.addEventListener("resync", () => onReconnect());
    }

    open();
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") { node.className = v; } else if (k.startsWith("on")) { node.addEventListener(k.slice(2), v); }
      else { node.setAttribute(k, v); }
    }
    for (const child of children) {
      if (child !== null && child !== undefined) { node.append(child instanceof Node ? child : String(child)); }
    }
    return node;
  }

  function time(iso) {
    if (!iso) { return ""; }
    return new Date(iso).toLocaleString(locale, { timeZone, hour12: false });
  }

  // Intl options in the server's time zone, e.g. zoned({ hour: "2-digit" }).
  function zoned(options = {}) {
    return { timeZone, hour12: false, ...options };
  }

  // 1234.5 → "1,234.5" with `digits` decimals.
  function num(value, digits = 1) {
    return value.toLocaleString(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // A ratio as a percentage with one decimal: 0.953 → "95.3%"; "—" when there is none.
  function pct(value) {
    return value === null || value === undefined ? "—" : `${num(value * 100)}%`;
  }

  return { api, live, el, time, zoned, num, pct, t, list, locale, timeZone };
})();
