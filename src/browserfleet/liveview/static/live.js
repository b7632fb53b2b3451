// browserfleet live view: shows one tab of a remote Chrome over CDP and forwards input to it.
// The page's query carries `wss`, the session's CDP discovery base (http(s)://.../cdp/{token}).
"use strict";

(() => {
  const MAP = JSON.parse(document.getElementById("input-map").textContent);
  const POLL_MS = 2000;
  const RETRIES = 3;
  const QUALITY = 70;
  // Chrome sends the next frame once the last is acknowledged: holding the ack caps this
  // viewer's frame rate (and the browser's work for it) at the server's viewer cap.
  const MAX_FPS = Number(document.documentElement.dataset.maxFps) || 30;
  let lastAckAt = 0;
  const own = (table, key) => (Object.hasOwn(table, key) ? table[key] : undefined);

  // ---- Input mapping: mirrors browserfleet/liveview/input_events.py -------------------------
  function modifiers(e) {
    const m = MAP.modifiers;
    return (e.altKey ? m.alt : 0) | (e.ctrlKey ? m.ctrl : 0) |
      (e.metaKey ? m.meta : 0) | (e.shiftKey ? m.shift : 0);
  }

  function mouseButton(domButton) {
    return domButton >= 0 && domButton < MAP.buttons.length ? MAP.buttons[domButton] : "none";
  }

  function heldButton(domButtons) {
    const held = MAP.buttonBits.find(([bit]) => domButtons & bit);
    return held ? held[1] : "none";
  }

  function frameRect(canvas, frame) {
    if (frame.deviceWidth <= 0 || frame.deviceHeight <= 0) return { x: 0, y: 0, width: 0, height: 0 };
    const fit = Math.min(canvas.width / frame.deviceWidth, canvas.height / frame.deviceHeight);
    const width = frame.deviceWidth * fit;
    const height = frame.deviceHeight * fit;
    return { x: (canvas.width - width) / 2, y: (canvas.height - height) / 2, width, height };
  }

  function canvasToPage(point, canvas, frame, clamp = false) {
    const rect = frameRect(canvas, frame);
    if (rect.width <= 0 || rect.height <= 0) return null;
    let x = point.x - rect.x;
    let y = point.y - rect.y;
    if (clamp) {
      x = Math.min(Math.max(x, 0), rect.width);
      y = Math.min(Math.max(y, 0), rect.height);
    } else if (!(x >= 0 && x <= rect.width && y >= 0 && y <= rect.height)) {
      return null;
    }
    const dipPerPx = frame.deviceWidth / rect.width;
    const scale = frame.pageScaleFactor > 0 ? frame.pageScaleFactor : 1;
    return { x: (x * dipPerPx) / scale, y: (y * dipPerPx - (frame.offsetTop || 0)) / scale };
  }

  function mouseEventParams(event, at) {
    const type = MAP.mouseTypes[event.type];
    const moved = type === MAP.mouseMoved;
    return {
      type, x: at.x, y: at.y,
      button: moved ? heldButton(event.buttons) : mouseButton(event.button),
      buttons: event.buttons,
      clickCount: moved ? 0 : Math.max(event.detail, 1),
      modifiers: event.modifiers,
    };
  }

  function wheelDelta(delta, deltaMode, pageHeight) {
    if (deltaMode === MAP.deltaModes.line) return delta * MAP.lineHeight;
    if (deltaMode === MAP.deltaModes.page) return delta * pageHeight;
    return delta;
  }

  function virtualKeyCode(key, code) {
    return own(MAP.keyCodesByCode, code) || own(MAP.keyCodesByKey, key) || 0;
  }

  function keyText(key, mask) {
    const m = MAP.modifiers;
    const chord = mask & (m.ctrl | m.meta);
    const altgr = mask & m.ctrl && mask & m.alt;
    if (chord && !altgr) return "";
    const named = own(MAP.namedKeyText, key);
    if (named !== undefined) return named;
    return [...key].length === 1 ? key : "";
  }

  function keyEventParams(event) {
    const down = event.type === "keydown";
    const text = down ? keyText(event.key, event.modifiers) : "";
    const params = {
      type: down && !text ? MAP.rawKeyDown : MAP.keyTypes[event.type],
      key: event.key, code: event.code,
      windowsVirtualKeyCode: virtualKeyCode(event.key, event.code),
      modifiers: event.modifiers, location: event.location, autoRepeat: event.repeat,
    };
    if (text) Object.assign(params, { text, unmodifiedText: text });
    return params;
  }

  // ---- One CDP websocket --------------------------------------------------------------------
  class Cdp {
    constructor(url, onEvent, onClose) {
      this.ws = new WebSocket(url);
      this.nextId = 1;
      this.pending = new Map();
      this.opened = new Promise((resolve, reject) => {
        this.ws.onopen = resolve;
        this.ws.onerror = reject;
      });
      this.opened.catch(() => {});
      this.ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        const waiter = this.pending.get(msg.id);
        if (waiter) {
          this.pending.delete(msg.id);
          if (msg.error) waiter.reject(new Error(msg.error.message));
          else waiter.resolve(msg.result);
        } else if (msg.method) {
          onEvent(this, msg.method, msg.params);
        }
      };
      this.ws.onclose = () => {
        for (const waiter of this.pending.values()) waiter.reject(new Error("socket closed"));
        this.pending.clear();
        onClose(this);
      };
    }

    send(method, params = {}) {
      if (this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("not open"));
      const id = this.nextId++;
      this.ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    }

    close() {
      this.ws.onclose = null;
      this.ws.close();
    }
  }

  // ---- Page state ---------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const root = document.documentElement;
  const canvas = $("screen");
  const ctx = canvas.getContext("2d");
  const urlField = $("url");
  const base = (new URLSearchParams(location.search).get("wss") || "").replace(/\/+$/, "");
  const state = {
    pages: [], current: null, cdp: null, frame: null, image: null, mainFrame: null,
    failures: 0, socketFailures: 0, ended: false, pendingMove: null, timer: null,
  };

  function show(kind, title, detail = "") {
    root.dataset.state = kind;
    $("overlay-title").textContent = title;
    $("overlay-detail").textContent = detail;
    $("status").title = title;
  }

  function end(title, detail) {
    state.ended = true;
    clearInterval(state.timer);
    if (state.cdp) state.cdp.close();
    state.cdp = null;
    state.pages = [];
    renderTabs();
    urlField.value = "";
    urlField.disabled = true;
    show("ended", title, detail);
  }

  async function discover() {
    try {
      const response = await fetch(`${base}/json/list`, { cache: "no-store", credentials: "omit" });
      if (response.status === 404 || response.status === 410) return { ended: true };
      if (!response.ok) return { error: `discovery answered ${response.status}` };
      const targets = await response.json();
      return { pages: targets.filter((t) => t.type === "page") };
    } catch (err) {
      return { error: String(err) };
    }
  }

  async function refresh() {
    if (state.ended) return;
    const found = await discover();
    if (state.ended) return;
    if (found.ended) return end("Session ended", "This browser session has stopped.");
    if (found.error) {
      if (++state.failures >= RETRIES) end("Session ended", "The browser is no longer reachable.");
      return;
    }
    state.failures = 0;
    state.pages = found.pages;
    const current = state.pages.find((p) => p.id === state.current);
    if (!state.pages.length) show("connecting", "No open tabs");
    else if (!current) select(state.pages[0].id);
    else if (!state.cdp) select(current.id);
    else if (document.activeElement !== urlField) urlField.value = current.url;
    renderTabs();
  }

  function renderTabs() {
    const tabs = state.pages.map((page) => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.className = "tab";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(page.id === state.current));
      tab.textContent = page.title || page.url || "New tab";
      tab.title = page.url;
      tab.addEventListener("click", () => page.id !== state.current && select(page.id));
      return tab;
    });
    $("tabs").replaceChildren(...tabs);
  }

  function select(id) {
    const page = state.pages.find((p) => p.id === id);
    if (state.cdp) state.cdp.close();
    Object.assign(state, { current: id, frame: null, mainFrame: null, pendingMove: null });
    if (document.activeElement !== urlField) urlField.value = page.url;
    show("connecting", "Connecting\u2026");
    const cdp = new Cdp(page.webSocketDebuggerUrl, onEvent, onSocketClosed);
    state.cdp = cdp;
    cdp.opened.then(async () => {
      const { frameTree } = await cdp.send("Page.getFrameTree");
      state.mainFrame = frameTree.frame.id;
      await cdp.send("Page.enable");
      await cdp.send("Page.bringToFront");
      await startScreencast(cdp);
    }).catch(() => {}); // a failed socket closes, and onSocketClosed takes over
    renderTabs();
  }

  function onSocketClosed(cdp) {
    if (cdp !== state.cdp || state.ended) return;
    state.cdp = null;
    if (++state.socketFailures > RETRIES) return end("Session ended", "The connection was lost.");
    show("connecting", "Reconnecting\u2026");
    setTimeout(refresh, 300 * state.socketFailures);
  }

  function onEvent(cdp, method, params) {
    if (cdp !== state.cdp) return;
    if (method === "Page.screencastFrame") onFrame(cdp, params);
    else if (method === "Page.frameNavigated" && !params.frame.parentId) {
      state.mainFrame = params.frame.id;
      setUrl(params.frame.url + (params.frame.urlFragment || ""));
    } else if (method === "Page.navigatedWithinDocument" && params.frameId === state.mainFrame) {
      setUrl(params.url);
    }
  }

  function setUrl(url) {
    const page = state.pages.find((p) => p.id === state.current);
    if (page) page.url = url;
    if (document.activeElement !== urlField) urlField.value = url;
  }

  // ---- Screencast ---------------------------------------------------------------------------
  function fitCanvas() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    const changed = canvas.width !== width || canvas.height !== height;
    canvas.width = width;
    canvas.height = height;
    return changed;
  }

  function startScreencast(cdp) {
    return cdp.send("Page.startScreencast", {
      format: "jpeg", quality: QUALITY, maxWidth: canvas.width, maxHeight: canvas.height,
    });
  }

  async function onFrame(cdp, { data, metadata, sessionId }) {
    try {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const image = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
      if (cdp !== state.cdp) return image.close();
      if (state.image) state.image.close();
      Object.assign(state, { image, frame: metadata, socketFailures: 0 });
      draw();
      if (root.dataset.state !== "live") show("live", "Live");
    } finally {
      const wait = Math.max(0, lastAckAt + 1000 / MAX_FPS - performance.now());
      setTimeout(() => {
        lastAckAt = performance.now();
        cdp.send("Page.screencastFrameAck", { sessionId }).catch(() => {});
      }, wait);
    }
  }

  function draw() {
    ctx.fillStyle = getComputedStyle(root).getPropertyValue("--page");
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!state.image || !state.frame) return;
    const ratio = canvas.width / canvas.clientWidth;
    const rect = frameRect({ width: canvas.clientWidth, height: canvas.clientHeight }, state.frame);
    ctx.drawImage(state.image, rect.x * ratio, rect.y * ratio, rect.width * ratio, rect.height * ratio);
  }

  let resizeTimer = null;
  new ResizeObserver(() => {
    if (!fitCanvas()) return;
    draw();
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const cdp = state.cdp;
      if (cdp) cdp.send("Page.stopScreencast").then(() => startScreencast(cdp)).catch(() => {});
    }, 150);
  }).observe(canvas);

  // ---- Input --------------------------------------------------------------------------------
  function pagePoint(e, clamp) {
    if (!state.frame) return null;
    const box = canvas.getBoundingClientRect();
    const point = { x: e.clientX - box.left, y: e.clientY - box.top };
    return canvasToPage(point, { width: box.width, height: box.height }, state.frame, clamp);
  }

  function sendMouse(e) {
    if (!state.cdp) return;
    const at = pagePoint(e, e.buttons !== 0 || e.type === "mouseup");
    if (!at) return;
    const params = mouseEventParams({
      type: e.type, button: e.button, buttons: e.buttons, detail: e.detail, modifiers: modifiers(e),
    }, at);
    if (e.type === "mousemove") {
      // Coalesce moves to one per animation frame; a press or release flushes the last one.
      if (!state.pendingMove) requestAnimationFrame(flushMove);
      state.pendingMove = params;
      return;
    }
    flushMove();
    state.cdp.send("Input.dispatchMouseEvent", params).catch(() => {});
  }

  function flushMove() {
    const move = state.pendingMove;
    state.pendingMove = null;
    if (move && state.cdp) state.cdp.send("Input.dispatchMouseEvent", move).catch(() => {});
  }

  let dragging = false;
  canvas.addEventListener("mousedown", (e) => {
    e.preventDefault();
    canvas.focus({ preventScroll: true });
    dragging = true;
    sendMouse(e);
  });
  window.addEventListener("mouseup", (e) => {
    if (dragging || e.target === canvas) sendMouse(e);
    dragging = false;
  });
  window.addEventListener("mousemove", (e) => {
    if (dragging || e.target === canvas) sendMouse(e);
  });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const at = pagePoint(e, false);
    if (!at || !state.cdp) return;
    const height = state.frame.deviceHeight;
    state.cdp.send("Input.dispatchMouseEvent", {
      type: "mouseWheel", x: at.x, y: at.y, modifiers: modifiers(e),
      deltaX: wheelDelta(e.deltaX, e.deltaMode, height),
      deltaY: wheelDelta(e.deltaY, e.deltaMode, height),
    }).catch(() => {});
  }, { passive: false });

  function onKey(e) {
    if (!state.cdp || e.isComposing) return;
    const mask = modifiers(e);
    // Ctrl/Cmd+V: let the browser fire `paste`, which types our clipboard into the page.
    const paste = e.key.toLowerCase() === "v" && mask & (MAP.modifiers.ctrl | MAP.modifiers.meta);
    if (paste) return;
    e.preventDefault();
    const params = keyEventParams({
      type: e.type, key: e.key, code: e.code, modifiers: mask, location: e.location, repeat: e.repeat,
    });
    state.cdp.send("Input.dispatchKeyEvent", params).catch(() => {});
  }
  canvas.addEventListener("keydown", onKey);
  canvas.addEventListener("keyup", onKey);
  canvas.addEventListener("paste", (e) => {
    const text = e.clipboardData.getData("text/plain");
    e.preventDefault();
    if (text && state.cdp) state.cdp.send("Input.insertText", { text }).catch(() => {});
  });

  // ---- Toolbar ------------------------------------------------------------------------------
  function normalizeUrl(text) {
    const value = text.trim();
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /^(about|data|view-source):/i.test(value)) return value;
    const local = /^(localhost|127\.|\[?::1\]?|\d+\.\d+\.\d+\.\d+)/i.test(value);
    return `${local ? "http" : "https"}://${value}`;
  }

  urlField.addEventListener("focus", () => urlField.select());
  urlField.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      const page = state.pages.find((p) => p.id === state.current);
      urlField.value = page ? page.url : "";
      canvas.focus();
    } else if (e.key === "Enter" && urlField.value.trim() && state.cdp) {
      state.cdp.send("Page.navigate", { url: normalizeUrl(urlField.value) }).catch(() => {});
      canvas.focus();
    }
  });

  async function goHistory(step) {
    const cdp = state.cdp;
    if (!cdp) return;
    const { currentIndex, entries } = await cdp.send("Page.getNavigationHistory");
    const entry = entries[currentIndex + step];
    if (entry) await cdp.send("Page.navigateToHistoryEntry", { entryId: entry.id });
  }
  $("back").addEventListener("click", () => goHistory(-1).catch(() => {}));
  $("forward").addEventListener("click", () => goHistory(1).catch(() => {}));
  $("reload").addEventListener("click", () => state.cdp && state.cdp.send("Page.reload").catch(() => {}));

  // ---- Start --------------------------------------------------------------------------------
  // The e2e test checks these against input_events.py.
  window.browserfleetLive = {
    canvasToPage, frameRect, heldButton, keyEventParams, keyText, mouseButton, mouseEventParams,
    virtualKeyCode, wheelDelta, frame: () => state.frame,
  };
  fitCanvas();
  if (!base) {
    end("No session", "This page needs a ?wss= parameter naming the session's CDP URL.");
  } else {
    refresh();
    state.timer = setInterval(refresh, POLL_MS);
  }
})();
