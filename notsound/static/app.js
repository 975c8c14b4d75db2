// The caption page: reads /feed, shows finals and the current partial, catches up after a drop.
// Every caption is set with textContent; only the server-rendered notes use HTML, and those are
// rebuilt here from an allowlist of elements as well.
"use strict";

(function () {
  const KEY = "notsound.page";
  const DEFAULTS = { mode: "reading", theme: "dark", lines: 3, size_reading: 22, size_projector: 56 };
  const THEMES = ["dark", "light", "contrast"];
  const MODES = ["reading", "projector"];
  const PROJECTOR_KEEP = 12; // finals kept in the projector view (it shows only its last lines)
  const ANNOUNCE_KEEP = 3;

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get("t") || "";
  const settings = loadSettings();

  const feed = { session: null, last: 0, live: 0, partial: null, attempt: 0, socket: null };
  const byUtt = new Map(); // utt -> {row, pj}

  // -- settings: URL > remembered > defaults ---------------------------------------

  function clamp(value, lo, hi, fallback) {
    const n = parseInt(value, 10);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
  }

  function loadSettings() {
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { saved = {}; }
    const s = Object.assign({}, DEFAULTS, saved);
    if (MODES.includes(params.get("mode"))) s.mode = params.get("mode");
    if (THEMES.includes(params.get("theme"))) s.theme = params.get("theme");
    if (params.has("lines")) s.lines = params.get("lines");
    if (params.has("size")) s["size_" + s.mode] = params.get("size");
    s.mode = MODES.includes(s.mode) ? s.mode : DEFAULTS.mode;
    s.theme = THEMES.includes(s.theme) ? s.theme : DEFAULTS.theme;
    s.lines = clamp(s.lines, 1, 6, DEFAULTS.lines);
    s.size_reading = clamp(s.size_reading, 12, 96, DEFAULTS.size_reading);
    s.size_projector = clamp(s.size_projector, 16, 200, DEFAULTS.size_projector);
    return s;
  }

  function saveSettings() {
    try { localStorage.setItem(KEY, JSON.stringify(settings)); } catch (e) { /* private mode */ }
  }

  function applySettings() {
    const body = document.body;
    body.className = "theme-" + settings.theme + " mode-" + settings.mode;
    const root = document.documentElement.style;
    root.setProperty("--size", settings["size_" + settings.mode] + "px");
    root.setProperty("--lines", String(settings.lines));
    $("set-mode").value = settings.mode;
    $("set-theme").value = settings.theme;
    $("set-lines").value = String(settings.lines);
    saveSettings();
    if (settings.mode === "reading") scrollToEnd(true);
  }

  function change(name, value) {
    settings[name] = value;
    applySettings();
  }

  function resize(step) {
    const name = "size_" + settings.mode;
    const lo = settings.mode === "projector" ? 16 : 12;
    const hi = settings.mode === "projector" ? 200 : 96;
    change(name, clamp(Math.round(settings[name] * step), lo, hi, settings[name]));
  }

  // -- rendering ---------------------------------------------------------------------

  function stamp(seconds) {
    const total = Math.max(0, Math.floor(seconds || 0));
    const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    return "[" + (h ? h + ":" + two(m) : two(m)) + ":" + two(s) + "]";
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The history scrolls by itself beside the notes; in the narrow layout the whole page does.
  function scroller() {
    const h = $("history");
    return getComputedStyle(h).overflowY === "auto" ? h : document.scrollingElement;
  }

  function nearEnd() {
    const s = scroller();
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (settings.mode !== "reading") return;
    const s = scroller();
    if (force || $("history").dataset.follow !== "no") s.scrollTop = s.scrollHeight;
  }

  function addFinal(msg) {
    if (msg.seq <= feed.last) return; // already shown: never twice
    feed.last = msg.seq;
    const follow = nearEnd();
    const empty = $("empty");
    if (empty) empty.remove();
    const row = el("p", "cap");
    row.dataset.seq = String(msg.seq);
    row.dataset.utt = String(msg.utt);
    row.append(el("span", "ts", stamp(msg.start)), " ");
    const audience = /^audience-\d+$/.test(msg.speaker || "");
    if (audience) {
      row.classList.add("audience");
      row.append(el("span", "who", "Audience " + msg.speaker.slice(9) + ":"), " ");
    }
    row.append(el("span", "tx", msg.text));
    if (msg.lang) row.lang = msg.lang;
    const events = (msg.events || []).filter((e) => e && e !== "Speech").map((e) => (e === "BGM" ? "Music" : e));
    if (events.length) row.append(" ", el("span", "ev", "(" + events.join(", ") + ")"));
    $("history").insertBefore(row, partialRow());
    const pj = el("span", audience ? "pj-final audience" : "pj-final", msg.text + " ");
    $("pj-text").insertBefore(pj, partialSpan());
    const pjFinals = $("pj-text").querySelectorAll(".pj-final");
    for (let i = 0; i < pjFinals.length - PROJECTOR_KEEP; i++) pjFinals[i].remove();
    byUtt.set(msg.utt, { row: row, pj: pj });
    if (feed.partial !== null && feed.partial <= msg.utt) setPartial(msg.utt, "");
    if (msg.seq > feed.live) announce(msg.text);
    if (follow) scrollToEnd(false);
  }

  function partialRow() {
    let row = $("partial");
    if (!row) {
      row = el("p", "cap partial");
      row.id = "partial";
      row.hidden = true;
      $("history").append(row);
    }
    return row;
  }

  function partialSpan() {
    let span = $("pj-partial");
    if (!span) {
      span = el("span", "pj-partial");
      span.id = "pj-partial";
      $("pj-text").append(span);
    }
    return span;
  }

  function setPartial(utt, text) {
    const follow = nearEnd();
    feed.partial = text ? utt : null;
    const row = partialRow(), span = partialSpan();
    row.textContent = text;
    row.hidden = !text;
    span.textContent = text;
    if (follow) scrollToEnd(false);
  }

  function setTranslation(utt, text) {
    const shown = byUtt.get(utt);
    if (!shown) return;
    let tr = shown.row.querySelector(".tr");
    if (!tr) {
      tr = el("span", "tr");
      shown.row.append(tr);
    }
    tr.textContent = text;
  }

  function announce(text) {
    if (!text) return;
    const region = $("announce");
    region.append(el("p", "", text));
    while (region.childElementCount > ANNOUNCE_KEEP) region.firstElementChild.remove();
  }

  // -- notes: rebuilt from an allowlist (the server already escaped the text) ----------

  const ALLOWED = new Set(["H1", "H2", "H3", "H4", "H5", "H6", "P", "UL", "OL", "LI", "STRONG", "EM",
    "CODE", "PRE", "BLOCKQUOTE", "HR", "BR", "A", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD", "DEL"]);

  function cleanCopy(node, into) {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        into.append(document.createTextNode(child.textContent));
      } else if (child.nodeType === Node.ELEMENT_NODE && ALLOWED.has(child.tagName)) {
        const copy = document.createElement(child.tagName.toLowerCase());
        const href = child.tagName === "A" ? child.getAttribute("href") || "" : "";
        if (/^https?:\/\//i.test(href)) {
          copy.setAttribute("href", href);
          copy.setAttribute("rel", "noopener noreferrer");
        }
        cleanCopy(child, copy);
        into.append(copy);
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        cleanCopy(child, into); // unknown element: keep its text only
      }
    }
  }

  function setNotes(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const body = $("notes-body");
    body.replaceChildren();
    cleanCopy(doc.body, body);
  }

  // -- the feed ------------------------------------------------------------------------

  function setStatus(text) {
    $("status").textContent = text;
  }

  function feedUrl() {
    const q = new URLSearchParams();
    if (token) q.set("t", token);
    if (feed.session !== null) {
      q.set("session", feed.session);
      q.set("since", String(feed.last));
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/feed?" + q.toString();
  }

  function reset() {
    feed.last = 0;
    feed.partial = null;
    byUtt.clear();
    $("history").replaceChildren(el("p", "empty", "Waiting for the first caption…"));
    $("history").firstChild.id = "empty";
    $("pj-text").replaceChildren();
  }

  function onMessage(event) {
    let msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "hello") {
      if (msg.reset) reset();
      feed.session = msg.session;
      // After a reset the numbering starts again: only what comes after this is new.
      feed.live = msg.reset ? msg.last : Math.max(feed.live, msg.last);
      feed.attempt = 0;
      document.title = "Live captions · " + msg.session;
      setStatus("live");
    } else if (msg.type === "final") {
      addFinal(msg);
    } else if (msg.type === "partial") {
      if (!byUtt.has(msg.utt)) setPartial(msg.utt, msg.text);
    } else if (msg.type === "translation") {
      setTranslation(msg.utt, msg.text);
    } else if (msg.type === "notes") {
      setNotes(msg.html);
    }
  }

  function connect() {
    setStatus(feed.attempt ? "reconnecting…" : "connecting…");
    const socket = new WebSocket(feedUrl());
    feed.socket = socket;
    socket.onmessage = onMessage;
    socket.onclose = (event) => {
      if (feed.socket !== socket) return;
      feed.socket = null;
      feed.attempt += 1;
      setStatus(event.code === 1001 ? "captioning stopped; retrying…" : "reconnecting…");
      const delay = Math.min(10000, 500 * 2 ** Math.min(feed.attempt, 5)) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  // -- wiring --------------------------------------------------------------------------

  function wire() {
    $("set-mode").addEventListener("change", (e) => change("mode", e.target.value));
    $("set-theme").addEventListener("change", (e) => change("theme", e.target.value));
    $("set-lines").addEventListener("change", (e) => change("lines", clamp(e.target.value, 1, 6, 3)));
    $("smaller").addEventListener("click", () => resize(1 / 1.15));
    $("larger").addEventListener("click", () => resize(1.15));
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("to-reading").addEventListener("click", (e) => { e.preventDefault(); change("mode", "reading"); });
    const follow = () => { $("history").dataset.follow = nearEnd() ? "yes" : "no"; };
    $("history").addEventListener("scroll", follow);
    window.addEventListener("scroll", follow);
    document.addEventListener("keydown", (e) => {
      if (e.target.closest && e.target.closest("select, input, textarea")) return;
      if (e.key === "m") change("mode", settings.mode === "reading" ? "projector" : "reading");
      else if (e.key === "t") change("theme", THEMES[(THEMES.indexOf(settings.theme) + 1) % THEMES.length]);
      else if (e.key === "+" || e.key === "=") resize(1.15);
      else if (e.key === "-") resize(1 / 1.15);
    });
  }

  wire();
  applySettings();
  connect();
  // Read-only view of the feed state, for tests and the browser console.
  window.notsoundFeed = Object.freeze({ get last() { return feed.last; }, get session() { return feed.session; } });
})();
