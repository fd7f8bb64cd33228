// Terminals in the page: xterm.js (static/vendor/xterm, loaded on the first terminal opened)
// joined to the dashboard's websocket on the page's own origin, so that it works wherever the
// pages work (behind a reverse proxy too). The socket's protocol is in
// machines/terminal_consumers.py: binary frames are output, JSON text frames are status;
// keystrokes go as {"i": ...}, sizes as {"r": [cols, rows]}.
(function () {
  "use strict";
  let loading = null;

  function load(el) {
    if (window.Terminal && window.FitAddon) return Promise.resolve();
    if (loading) return loading;
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = el.dataset.xtermCss;
    document.head.appendChild(css);
    const script = (src) => new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(s);
    });
    loading = script(el.dataset.xterm).then(() => script(el.dataset.xtermFit));
    return loading;
  }

  function socketUrl(el, term) {
    const url = new URL(el.dataset.terminal, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("cols", term.cols);
    url.searchParams.set("rows", term.rows);
    if (el.dataset.command) url.searchParams.set("cmd", el.dataset.command);
    return url.toString();
  }

  function start(el) {
    el.dataset.started = "1";
    const status = el.closest("section").querySelector("[data-terminal-status]");
    const say = (text, ended) => {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("ended", !!ended);
    };
    load(el).then(() => {
      const term = new window.Terminal({
        cursorBlink: true,
        scrollback: 5000,
        fontSize: 13,
        fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      });
      const fit = new window.FitAddon.FitAddon();
      term.loadAddon(fit);
      term.open(el);
      fit.fit();
      const ws = new WebSocket(socketUrl(el, term));
      ws.binaryType = "arraybuffer";
      const send = (message) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
      };
      // The page may have settled on another size while the socket was opening.
      ws.onopen = () => send({ r: [term.cols, term.rows] });
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") {
          term.write(new Uint8Array(event.data));
          return;
        }
        if (event.data[0] !== "{") return; // a keepalive
        const message = JSON.parse(event.data);
        say(message.status, message.ended);
        if (message.ended) term.write("\r\n\x1b[2m" + message.status + "\x1b[0m\r\n");
      };
      ws.onclose = () => {
        term.options.disableStdin = true;
        if (status && !status.classList.contains("ended")) say("disconnected", true);
      };
      term.onData((data) => send({ i: data }));
      term.onBinary((data) => send({ i: data }));
      term.onResize((size) => send({ r: [size.cols, size.rows] }));
      // Ctrl+Shift+C copies the selection, Ctrl+Shift+V pastes (the browser's own paste);
      // plain Ctrl+C stays the terminal's interrupt.
      term.attachCustomKeyEventHandler((e) => {
        if (e.type === "keydown" && e.ctrlKey && e.shiftKey && (e.code === "KeyC" || e.code === "KeyV")) {
          if (e.code === "KeyC" && term.hasSelection() && navigator.clipboard) {
            navigator.clipboard.writeText(term.getSelection());
          }
          return false;
        }
        return true;
      });
      const observer = new ResizeObserver(() => fit.fit());
      observer.observe(el);
      el.dockerdashTerminal = { term, ws, fit, observer };
      term.focus();
      el.scrollIntoView({ block: "nearest" });
    }).catch((error) => say(error.message, true));
  }

  function stop(el) {
    const t = el.dockerdashTerminal;
    if (!t) return;
    t.observer.disconnect();
    t.ws.close();
    t.term.dispose();
    el.dockerdashTerminal = null;
  }

  document.addEventListener("htmx:load", (event) => {
    const root = event.detail.elt;
    const found = root.matches && root.matches("[data-terminal]") ? [root] : [];
    for (const el of found.concat(Array.from(root.querySelectorAll ? root.querySelectorAll("[data-terminal]") : []))) {
      if (!el.dataset.started) start(el);
    }
  });
  // A panel swapped away (closed, or replaced by another terminal) ends its terminal.
  document.addEventListener("htmx:beforeCleanupElement", (event) => {
    const el = event.detail.elt;
    if (el.matches && el.matches("[data-terminal]")) stop(el);
  });
})();
