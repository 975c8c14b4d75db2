// The slide panel: the slide on screen at the playhead (from the journal's slide tags), shown as
// the page image (PDF) or title and text (PPTX); every slide in a list that seeks to where it was
// first discussed.
"use strict";

import { el, stamp } from "./common.js";

export class SlidePanel {
  constructor(slides, times, onPick) {
    this.items = new Map((slides.items || []).map((s) => [s.n, s]));
    this.times = (times || []).slice().sort((a, b) => a.t - b.t);
    this.buttons = new Map();
    this.shown = null;
    const list = document.getElementById("slide-list");
    for (const s of slides.items || []) {
      const b = el("button", "slide-pick");
      b.type = "button";
      b.dataset.n = String(s.n);
      b.append(el("span", "slide-n", s.n + "."), " ", el("span", "slide-title", s.title || "Slide " + s.n));
      if (s.first_t === null || s.first_t === undefined) {
        b.setAttribute("aria-disabled", "true");
        b.title = "Not discussed in the transcript";
      } else {
        b.append(" ", el("span", "ts", stamp(s.first_t)));
        b.addEventListener("click", () => onPick(s.first_t));
      }
      const li = el("li", "");
      li.append(b);
      list.append(li);
      this.buttons.set(s.n, b);
    }
  }

  /** The slide on screen at session time t (the last tag at or before it), else the caption's. */
  at(t, caption) {
    let n = null;
    for (const entry of this.times) { if (entry.t <= t + 1e-3) n = entry.n; else break; }
    if (n === null && caption && caption.slide !== undefined) n = caption.slide;
    if (n === null && this.times.length === 0 && this.items.size) n = this.items.keys().next().value;
    return n;
  }

  follow(t, caption) {
    const n = this.at(t, caption);
    if (n === this.shown) return;
    this.show(n);
  }

  show(n) {
    const old = this.buttons.get(this.shown);
    if (old) old.removeAttribute("aria-current");
    this.shown = n;
    const slide = this.items.get(n);
    const img = document.getElementById("slide-img");
    const text = document.getElementById("slide-text");
    const caption = document.getElementById("slide-caption");
    document.getElementById("slide-now").dataset.n = n === null ? "" : String(n);
    if (!slide) {
      img.hidden = true;
      text.hidden = true;
      caption.textContent = "No slide yet.";
      return;
    }
    const title = slide.title || "Slide " + n;
    caption.textContent = "Slide " + n + ": " + title;
    if (slide.image) {
      img.src = slide.image;
      img.alt = "Slide " + n + ": " + title;
      img.hidden = false;
      text.hidden = true;
    } else {
      img.hidden = true;
      img.removeAttribute("src");
      text.replaceChildren(el("p", "slide-heading", title), el("p", "slide-body", slide.text || ""));
      text.hidden = false;
    }
    const b = this.buttons.get(n);
    if (b) b.setAttribute("aria-current", "true");
  }
}
