// Shared by the console pages: API calls with the CSRF token, the live stream, small DOM helpers.
"use strict";

const VW = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

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
    if (!response.ok) { throw new Error(data.error || ("HTTP " + response.status)); }
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
    return new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
  }

  return { api, live, el, time };
})();
