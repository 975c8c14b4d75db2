// Shared by the library and lecture pages: settings (theme), DOM and time helpers, JSON fetch.
// Every text from the server goes into the page through textContent (el(), marked()).
"use strict";

export const THEMES = ["dark", "light", "contrast"];
const KEY = "notsound.room";

export const $ = (id) => document.getElementById(id);

export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** [mm:ss] or [h:mm:ss] of a number of seconds. */
export function stamp(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return "[" + (h ? h + ":" + two(m) : two(m)) + ":" + two(s) + "]";
}

/** "1 h 05 min", "12 min", "40 s". */
export function duration(seconds) {
  const total = Math.round(seconds || 0);
  if (total < 60) return total + " s";
  const h = Math.floor(total / 3600), m = Math.round((total % 3600) / 60);
  return h ? h + " h " + String(m).padStart(2, "0") + " min" : m + " min";
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Snippet segments [[text, is_hit], ...] as text nodes and <mark> elements. */
export function marked(segments) {
  const out = document.createDocumentFragment();
  for (const [text, hit] of segments || []) {
    out.append(hit ? el("mark", "", text) : document.createTextNode(String(text)));
  }
  return out;
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function getJSON(url, options) {
  const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    throw new HttpError(response.status, (body && body.error) || response.status + " " + response.statusText);
  }
  return body;
}

// -- settings: ?theme= > remembered > dark -------------------------------------------

export function loadSettings() {
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { saved = {}; }
  const wanted = new URLSearchParams(location.search).get("theme");
  const theme = THEMES.includes(wanted) ? wanted : THEMES.includes(saved.theme) ? saved.theme : "dark";
  return Object.assign({}, saved, { theme: theme });
}

export function saveSettings(settings) {
  try { localStorage.setItem(KEY, JSON.stringify(settings)); } catch (e) { /* private mode */ }
}

/** Applies the theme and keeps the theme selector (id set-theme) and storage in step. */
export function wireTheme(settings) {
  const select = $("set-theme");
  const apply = () => {
    for (const t of THEMES) document.body.classList.toggle("theme-" + t, t === settings.theme);
    select.value = settings.theme;
    saveSettings(settings);
  };
  select.addEventListener("change", () => { settings.theme = select.value; apply(); });
  apply();
  return () => { settings.theme = THEMES[(THEMES.indexOf(settings.theme) + 1) % THEMES.length]; apply(); };
}

/** True when a key press belongs to a control that types or picks (not a shortcut). */
export function typing(event) {
  const t = event.target;
  return !!(t && t.closest && t.closest("input, textarea, select, [contenteditable]"));
}
