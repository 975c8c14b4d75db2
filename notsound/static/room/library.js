// The library page: every lecture, newest first, and a search over all of them (/api/search).
import { $, el, stamp, duration, when, marked, getJSON, loadSettings, wireTheme, typing } from "./common.js";

const DEBOUNCE_MS = 250;
const BADGES = [["live", "live"], ["recording", "recording"], ["slides", "slides"], ["notes", "notes"],
  ["summary", "summary"], ["polished", "polished"], ["translation", "translation"]];
const KINDS = { caption: "caption", notes: "notes", summary: "summary" };

function lectureItem(lecture) {
  const li = el("li", "lecture");
  const link = el("a", "lecture-title", lecture.title || lecture.name);
  link.href = "/lecture/" + encodeURIComponent(lecture.name);
  const head = el("h3", "");
  head.append(link);
  const facts = el("p", "facts");
  const parts = [when(lecture.started), duration(lecture.duration_s),
    (lecture.words || 0).toLocaleString() + " words", lecture.language ? "language: " + lecture.language : ""];
  facts.textContent = parts.filter(Boolean).join(" · ");
  const badges = el("ul", "badges");
  badges.setAttribute("aria-label", "Has");
  for (const [key, label] of BADGES) {
    if (lecture[key]) badges.append(el("li", "badge badge-" + key, label));
  }
  li.append(head, facts);
  if (badges.childElementCount) li.append(badges);
  return li;
}

async function showLectures() {
  const status = $("lectures-status");
  try {
    const data = await getJSON("/api/lectures");
    const list = $("lectures");
    list.replaceChildren(...data.lectures.map(lectureItem));
    status.textContent = data.lectures.length ? "" : "No lectures yet: record one with notsound live.";
    status.hidden = data.lectures.length > 0;
  } catch (e) {
    status.textContent = "Cannot load the lectures: " + e.message;
  }
}

function resultItem(result) {
  const li = el("li", "result");
  const link = el("a", "result-link");
  link.href = "/lecture/" + encodeURIComponent(result.session) + "#t=" + Number(result.t || 0);
  link.dataset.session = result.session;
  link.dataset.t = String(result.t);
  const where = el("span", "where");
  where.append(el("span", "result-title", result.title || result.session), " ",
    el("span", "ts", stamp(result.t)), " ", el("span", "kind", KINDS[result.kind] || result.kind || ""));
  const snippet = el("span", "snippet");
  snippet.append(marked(result.snippet));
  link.append(where, snippet);
  li.append(link);
  return li;
}

function searcher() {
  let timer = 0, asked = 0, shown = "";
  const run = async (query) => {
    query = query.trim();
    if (query === shown) return;
    const mine = ++asked;
    const status = $("search-status");
    if (!query) {
      shown = "";
      $("results").hidden = true;
      status.textContent = "";
      return;
    }
    status.textContent = "Searching…";
    try {
      const data = await getJSON("/api/search?q=" + encodeURIComponent(query) + "&limit=50");
      if (mine !== asked) return; // a newer search is under way
      shown = query;
      history.replaceState(null, "", "?q=" + encodeURIComponent(query));
      $("result-list").replaceChildren(...data.results.map(resultItem));
      $("results-h").textContent = "Results for “" + query + "”";
      $("results").hidden = false;
      status.textContent = data.results.length === 1 ? "1 result" : data.results.length + " results";
    } catch (e) {
      if (mine === asked) status.textContent = "Search failed: " + e.message;
    }
  };
  return {
    soon(query) { clearTimeout(timer); timer = setTimeout(() => run(query), DEBOUNCE_MS); },
    now(query) { clearTimeout(timer); shown = ""; return run(query); },
  };
}

function wire() {
  const settings = loadSettings();
  const nextTheme = wireTheme(settings);
  const search = searcher();
  const box = $("q");
  box.addEventListener("input", () => search.soon(box.value));
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search.now(box.value); });
  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") { e.preventDefault(); box.focus(); }
    else if (e.key === "t") nextTheme();
  });
  const initial = new URLSearchParams(location.search).get("q");
  if (initial) { box.value = initial; search.now(initial); }
}

wire();
showLectures();
