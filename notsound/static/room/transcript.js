// The transcript: one button a caption; the caption under the playhead is highlighted and kept
// in view until the reader scrolls (then "Back to playback" resumes). One caption button is in
// the tab order at a time; up/down/Home/End move between them.
"use strict";

import { el, stamp } from "./common.js";

const SCROLL_KEYS = new Set(["PageUp", "PageDown", "Home", "End", "ArrowUp", "ArrowDown"]);

function speakerLabel(speaker) {
  if (!speaker) return "";
  const m = /^audience-(\d+)$/.exec(speaker);
  return m ? "Audience " + m[1] : "";
}

export class Transcript {
  constructor(list, resume, onPick) {
    this.list = list;
    this.resume = resume;
    this.onPick = onPick;
    this.caps = [];
    this.buttons = [];
    this.byUtt = new Map();
    this.current = -1;
    this.follow = true;
    list.addEventListener("click", (e) => {
      const button = e.target.closest("button.cap");
      if (button) this.onPick(this.caps[Number(button.dataset.i)]);
    });
    list.addEventListener("keydown", (e) => this.onKey(e));
    const pause = () => this.setFollow(false);
    list.addEventListener("wheel", pause, { passive: true });
    list.addEventListener("touchmove", pause, { passive: true });
    list.addEventListener("pointerdown", (e) => { if (e.target === list) pause(); });
    resume.addEventListener("click", () => { this.setFollow(true); this.reveal(); });
  }

  button(caption, i) {
    const b = el("button", "cap");
    b.type = "button";
    b.tabIndex = -1;
    b.dataset.i = String(i);
    b.dataset.utt = String(caption.utt);
    b.dataset.start = String(caption.start);
    b.dataset.end = String(caption.end);
    b.append(el("span", "ts", stamp(caption.start)), " ");
    const who = speakerLabel(caption.speaker);
    if (who) {
      b.classList.add("audience");
      b.append(el("span", "who", who + ":"), " ");
    }
    b.append(el("span", "tx", caption.text));
    if (caption.translation) b.append(el("span", "tr", caption.translation));
    return b;
  }

  render(captions) {
    this.caps = [];
    this.buttons = [];
    this.byUtt.clear();
    this.current = -1;
    const items = document.createDocumentFragment();
    for (const c of captions) items.append(this.item(c));
    this.list.replaceChildren(items);
    if (!captions.length) this.list.append(el("li", "empty", "No captions yet."));
    else this.buttons[0].tabIndex = 0;
  }

  item(caption) {
    const i = this.caps.length;
    const b = this.button(caption, i);
    this.caps.push(caption);
    this.buttons.push(b);
    this.byUtt.set(caption.utt, i);
    const li = el("li", "");
    li.append(b);
    return li;
  }

  /** A caption that arrived from the live feed (in order; one already shown is ignored). */
  append(caption) {
    if (this.byUtt.has(caption.utt)) return false;
    const empty = this.list.querySelector(".empty");
    if (empty) empty.remove();
    const li = this.item(caption);
    const partial = this.list.querySelector(".partial");
    this.list.insertBefore(li, partial);
    if (this.caps.length === 1) this.buttons[0].tabIndex = 0;
    return true;
  }

  setTranslation(utt, text) {
    const i = this.byUtt.get(utt);
    if (i === undefined) return;
    const b = this.buttons[i];
    let tr = b.querySelector(".tr");
    if (!tr) b.append((tr = el("span", "tr")));
    tr.textContent = text;
  }

  setPartial(text) {
    let row = this.list.querySelector(".partial");
    if (!text) { if (row) row.remove(); return; }
    if (!row) this.list.append((row = el("li", "partial")));
    row.textContent = text;
  }

  /** Index of the caption under session time t: the last that started at or before it. */
  indexAt(t) {
    let lo = 0, hi = this.caps.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.caps[mid].start <= t + 1e-3) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  highlight(t) {
    const i = this.indexAt(t);
    if (i === this.current) return;
    const old = this.buttons[this.current];
    if (old) { old.classList.remove("current"); old.removeAttribute("aria-current"); }
    this.current = i;
    const now = this.buttons[i];
    if (!now) return;
    now.classList.add("current");
    now.setAttribute("aria-current", "true");
    if (!this.list.contains(document.activeElement)) this.rove(i);
    if (this.follow) this.reveal();
  }

  rove(i) {
    for (const b of this.list.querySelectorAll("button.cap[tabindex='0']")) b.tabIndex = -1;
    if (this.buttons[i]) this.buttons[i].tabIndex = 0;
  }

  /** Scrolls the current caption into the upper third of the transcript when it is out of view. */
  reveal() {
    const b = this.buttons[this.current];
    if (!b) return;
    const box = this.list;
    const top = b.offsetTop, bottom = top + b.offsetHeight;
    if (top < box.scrollTop || bottom > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }

  revealEnd() {
    if (this.follow) this.list.scrollTop = this.list.scrollHeight;
  }

  setFollow(on) {
    this.follow = on;
    this.resume.hidden = on;
  }

  neighbour(step) {
    const i = this.current < 0 ? (step > 0 ? 0 : -1) : this.current + step;
    return i >= 0 && i < this.caps.length ? this.caps[i] : null;
  }

  onKey(e) {
    const b = e.target.closest("button.cap");
    if (!SCROLL_KEYS.has(e.key) || e.altKey || e.ctrlKey || e.metaKey) return;
    this.setFollow(false);
    if (!b) return; // the list itself: the browser scrolls it
    const at = Number(b.dataset.i), last = this.buttons.length - 1;
    const to = { ArrowUp: at - 1, ArrowDown: at + 1, Home: 0, End: last, PageUp: at - 10, PageDown: at + 10 }[e.key];
    const i = Math.min(last, Math.max(0, to));
    e.preventDefault();
    e.stopPropagation();
    this.rove(i);
    this.buttons[i].focus();
  }
}
