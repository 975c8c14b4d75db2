// The lecture page: the recording with its transcript, slides, notes, summary, exports and the
// Ask panel, from /api/lectures/NAME. Every caption, deck and answer text is set as text; the
// notes and summary are the server's rendering of markdown with raw HTML off (the only HTML).
import { $, el, stamp, duration, when, getJSON, loadSettings, saveSettings, wireTheme, typing } from "./common.js";
import { Player, SPEEDS } from "./player.js";
import { Transcript } from "./transcript.js";
import { SlidePanel } from "./slides.js";
import { wireAsk } from "./ask.js";
import { followFeed } from "./live.js";

const STEP_S = 5;
const settings = loadSettings();
const nextTheme = wireTheme(settings);
const state = { lecture: null, player: null, transcript: null, slides: null, ready: false, readyMs: null };

function lectureName() {
  const m = /^\/lecture\/([^/]+)\/?$/.exec(location.pathname);
  return m ? decodeURIComponent(m[1]) : "";
}

function hashTime() {
  const m = /(?:^#|&)t=([0-9]+(?:\.[0-9]+)?)/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function setStatus(text) { $("status").textContent = text; }

// -- following the playhead ------------------------------------------------------------

function tick() {
  const { player, transcript, slides } = state;
  const t = player.time;
  transcript.highlight(t);
  if (slides) slides.follow(t, transcript.caps[transcript.current]);
  $("clock").textContent = stamp(t);
}

function animate() {
  tick();
  if (state.player.playing) requestAnimationFrame(animate);
}

function seek(t, play) {
  state.player.seek(t);
  tick();
  if (play) state.player.play();
}

/** Where an a.seek link points: the start of its caption (a citation) or its time. */
function linkTime(link) {
  const tr = state.transcript;
  const i = link.dataset.utt === undefined ? undefined : tr.byUtt.get(Number(link.dataset.utt));
  return i === undefined ? Number(link.dataset.t) : tr.caps[i].start;
}

function pickCaption(caption) {
  state.transcript.setFollow(true);
  seek(caption.start, true);
}

function stepCaption(step) {
  const tr = state.transcript;
  const here = tr.caps[tr.current];
  // "previous" from well inside a caption goes back to its own start first
  const target = step < 0 && here && state.player.time - here.start > 1.5 ? here : tr.neighbour(step);
  if (target) pickCaption(target);
}

function changeSpeed(step) {
  const rate = state.player.speed(step);
  $("speed").value = String(rate);
  settings.speed = rate;
  saveSettings(settings);
  setStatus("Speed " + rate + "×");
}

// -- panels ---------------------------------------------------------------------------

function showFacts(lecture) {
  document.title = (lecture.title || lecture.name) + " · Lecture";
  $("title").textContent = lecture.title || lecture.name;
  const facts = [when(lecture.started), duration(lecture.duration_s), lecture.language,
    lecture.layer === "polished" ? "polished transcript" : "live transcript", lecture.live ? "live now" : ""];
  $("facts").textContent = facts.filter(Boolean).join(" · ");
}

function showHtml(section, body, html) {
  if (!html) return;
  body.innerHTML = html; // server-rendered markdown, raw HTML off; times are a.seek links
  $(section).hidden = false;
}

function showExports(exports) {
  if (!exports || !exports.length) return;
  const list = $("export-list");
  for (const x of exports) {
    const a = el("a", "button", x.label || x.format);
    a.href = x.url;
    a.setAttribute("download", "");
    const li = el("li", "");
    li.append(a);
    list.append(li);
  }
  $("exports").hidden = false;
}

function showLecture(lecture) {
  state.lecture = lecture;
  showFacts(lecture);
  const parts = (lecture.recording && lecture.recording.parts) || [];
  state.player = new Player($("audio"), parts, lecture.live);
  if (!parts.length) { $("audio").hidden = true; $("no-audio").hidden = false; }
  state.player.setRate(Number(settings.speed) || 1);
  $("speed").value = String(state.player.rate);
  state.transcript = new Transcript($("transcript"), $("resume"), pickCaption);
  state.transcript.render(lecture.captions || []);
  if (lecture.slides && (lecture.slides.items || []).length) {
    state.slides = new SlidePanel(lecture.slides, lecture.slide_times, (t) => seek(t, true));
    $("slides").hidden = false;
  }
  showHtml("notes", $("notes-body"), lecture.notes_html);
  showHtml("summary", $("summary-body"), lecture.summary_html);
  showExports(lecture.exports);
  if (lecture.can_ask) wireAsk(lecture.name);
  if (lecture.live && lecture.feed) goLive(lecture.feed);
  const t = hashTime();
  if (t !== null) seek(t, false);
  else tick();
  state.ready = true;
  state.readyMs = performance.now();
}

function goLive(feed) {
  const tr = state.transcript;
  followFeed(feed, {
    status: setStatus,
    final(msg) {
      const caption = { utt: msg.utt, start: msg.start, end: msg.end, text: msg.text };
      if (msg.speaker) caption.speaker = msg.speaker;
      tr.setPartial("");
      if (tr.append(caption) && !state.player.playing) tr.revealEnd();
    },
    partial(text) { tr.setPartial(text); if (!state.player.playing) tr.revealEnd(); },
    translation: (utt, text) => tr.setTranslation(utt, text),
  });
}

// -- wiring ---------------------------------------------------------------------------

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e) || $("help").open) return;
  const onControl = e.target.closest && e.target.closest("button, a, audio");
  const actions = {
    k: () => state.player.toggle(), " ": onControl ? null : () => state.player.toggle(),
    j: () => state.player.skip(-STEP_S), l: () => state.player.skip(STEP_S),
    ArrowLeft: e.target.closest("audio") ? null : () => state.player.skip(-STEP_S),
    ArrowRight: e.target.closest("audio") ? null : () => state.player.skip(STEP_S),
    p: () => stepCaption(-1), n: () => stepCaption(1),
    "[": () => changeSpeed(-1), "<": () => changeSpeed(-1), "]": () => changeSpeed(1), ">": () => changeSpeed(1),
    f: () => { state.transcript.setFollow(true); state.transcript.reveal(); },
    t: nextTheme, "?": () => $("help").showModal(),
  };
  const action = actions[e.key];
  if (!action || !state.ready) return;
  e.preventDefault();
  action();
  tick();
}

function wire() {
  const audio = $("audio");
  for (const type of ["timeupdate", "seeked", "seeking", "loadedmetadata"]) audio.addEventListener(type, tick);
  audio.addEventListener("play", () => requestAnimationFrame(animate));
  $("speed").addEventListener("change", (e) => {
    state.player.setRate(Number(e.target.value));
    settings.speed = state.player.rate;
    saveSettings(settings);
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a.seek");
    if (!link || !state.ready) return;
    e.preventDefault();
    state.transcript.setFollow(true);
    seek(linkTime(link), true);
  });
  window.addEventListener("hashchange", () => { const t = hashTime(); if (t !== null && state.ready) seek(t, false); });
  $("help-open").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
}

async function main() {
  wire();
  const name = lectureName();
  try {
    showLecture(await getJSON("/api/lectures/" + encodeURIComponent(name)));
  } catch (e) {
    $("title").textContent = "Lecture not available";
    $("transcript").replaceChildren(el("li", "empty", "Cannot open this lecture: " + e.message));
  }
}

main();
// Read-only view of the page state, for tests and the browser console.
window.notsoundRoom = Object.freeze({
  get ready() { return state.ready; },
  get readyMs() { return state.readyMs; }, // since navigation start
  get time() { return state.player ? state.player.time : 0; },
  get current() { const c = state.transcript && state.transcript.caps[state.transcript.current]; return c ? c.utt : null; },
  get slide() { return state.slides ? state.slides.shown : null; },
  get speeds() { return SPEEDS.slice(); },
});
