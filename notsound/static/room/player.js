// The recording as one timeline of session time over its parts: session time t plays at
// t - offset in the last part whose offset <= t; the next part follows when one ends.
"use strict";

export const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];

export class Player {
  constructor(audio, parts, live) {
    this.audio = audio;
    this.parts = (parts || []).slice().sort((a, b) => a.offset - b.offset);
    this.live = !!live;
    this.index = -1;
    this.wanted = null; // session time asked for while the part's metadata is loading
    this.rate = 1;
    audio.addEventListener("loadedmetadata", () => this.settle());
    audio.addEventListener("ended", () => this.next());
    if (this.parts.length) this.load(0, false);
  }

  get ready() { return this.parts.length > 0; }

  /** The session time under the playhead (with no recording: the last one sought). */
  get time() {
    if (this.index < 0) return this.wanted || 0;
    if (this.wanted !== null) return this.wanted;
    return this.parts[this.index].offset + this.audio.currentTime;
  }

  get playing() { return !this.audio.paused && !this.audio.ended; }

  partAt(t) {
    let found = 0;
    for (let i = 0; i < this.parts.length; i++) if (this.parts[i].offset <= t + 1e-6) found = i;
    return found;
  }

  load(index, fresh) {
    const url = this.parts[index].url;
    this.index = index;
    this.audio.src = fresh ? url + (url.includes("?") ? "&" : "?") + "n=" + Date.now() : url;
    this.audio.defaultPlaybackRate = this.rate;
    this.audio.playbackRate = this.rate;
  }

  /** Seconds of the current part the browser can seek in (a live part grows). */
  loadedEnd() {
    const s = this.audio.seekable;
    return s.length ? s.end(s.length - 1) : 0;
  }

  seek(t) {
    t = Math.max(0, Number(t) || 0);
    if (!this.ready) { this.wanted = t; return; }
    const index = this.partAt(t);
    const into = t - this.parts[index].offset;
    const growing = this.live && index === this.parts.length - 1;
    if (index !== this.index) this.load(index, growing);
    else if (growing && this.audio.readyState >= 1 && into > this.loadedEnd()) this.load(index, true);
    this.wanted = t;
    if (this.audio.readyState >= 1) this.settle();
  }

  settle() {
    if (this.wanted === null) return;
    const into = this.wanted - this.parts[this.index].offset;
    this.wanted = null;
    this.audio.currentTime = into;
  }

  play() {
    if (!this.ready) return Promise.resolve();
    return this.audio.play().catch(() => { /* refused (autoplay) or interrupted by a new source */ });
  }

  toggle() {
    if (this.playing) this.audio.pause();
    else this.play();
  }

  skip(seconds) { this.seek(this.time + seconds); }

  speed(step) {
    const i = SPEEDS.indexOf(this.rate);
    this.setRate(SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, (i < 0 ? 2 : i) + step))]);
    return this.rate;
  }

  setRate(rate) {
    this.rate = SPEEDS.includes(rate) ? rate : 1;
    this.audio.defaultPlaybackRate = this.rate;
    this.audio.playbackRate = this.rate;
  }

  next() {
    if (this.index < this.parts.length - 1) {
      this.load(this.index + 1, this.live && this.index + 1 === this.parts.length - 1);
      this.play();
    } else if (this.live) {
      const end = this.time;
      this.load(this.index, true); // the part being written: take what was added meanwhile
      this.wanted = end;
      this.audio.addEventListener("loadedmetadata", () => {
        if (this.loadedEnd() > end - this.parts[this.index].offset + 0.5) this.play();
      }, { once: true });
    }
  }
}
