// browserfleet view-only live view: draws the frames the server pushes, sends nothing back.
// The page's query carries `view` (session id and its view capability); the server's frames
// websocket knows no input and no CDP, so there is nothing here to take over.
"use strict";

(() => {
  const root = document.documentElement;
  const canvas = document.getElementById("screen");
  const ctx = canvas.getContext("2d");
  const view = new URLSearchParams(location.search).get("view") || "";
  const state = { image: null, retries: 0 };

  function show(kind, title, detail = "") {
    root.dataset.state = kind;
    document.getElementById("overlay-title").textContent = title;
    document.getElementById("overlay-detail").textContent = detail;
  }

  function fitCanvas() {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    canvas.height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    draw();
  }

  function draw() {
    ctx.fillStyle = getComputedStyle(root).getPropertyValue("--page");
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const image = state.image;
    if (!image) return;
    const fit = Math.min(canvas.width / image.width, canvas.height / image.height);
    const w = image.width * fit;
    const h = image.height * fit;
    ctx.drawImage(image, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  }

  function connect() {
    const url = new URL("live/frames", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = new URLSearchParams({ view }).toString();
    const socket = new WebSocket(url);
    socket.binaryType = "blob";
    socket.onmessage = async (event) => {
      if (!(event.data instanceof Blob)) return;
      const image = await createImageBitmap(event.data);
      if (state.image) state.image.close();
      state.image = image;
      state.retries = 0;
      draw();
      if (root.dataset.state !== "live") show("live", "Live");
      window.__framesDrawn = (window.__framesDrawn || 0) + 1;
    };
    socket.onclose = (event) => {
      if (event.code === 1000 || event.code === 4404) {
        show("ended", "Session ended", event.reason || "");
      } else if (event.code === 4403) {
        show("ended", "This link is not valid", "");
      } else if (state.retries++ < 3) {
        show("connecting", "Reconnecting\u2026");
        setTimeout(connect, 1000 * state.retries);
      } else {
        show("ended", "Disconnected", "");
      }
    };
  }

  window.addEventListener("resize", fitCanvas);
  fitCanvas();
  connect();
})();
