// A live lecture: captions from the caption feed (/feed, the caption page's protocol) appended to
// the transcript as they arrive; reconnects with back-off and resumes after the last one seen.
"use strict";

export function followFeed(path, handlers) {
  const state = { last: 0, session: null, attempt: 0, socket: null };
  const url = () => {
    const u = new URL(path, location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (state.session !== null) {
      u.searchParams.set("session", state.session);
      u.searchParams.set("since", String(state.last));
    }
    return u.toString();
  };
  const onMessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "hello") {
      if (msg.reset) state.last = 0;
      state.session = msg.session;
      state.attempt = 0;
      handlers.status("live");
    } else if (msg.type === "final") {
      if (msg.seq <= state.last) return;
      state.last = msg.seq;
      handlers.final(msg);
    } else if (msg.type === "partial") {
      handlers.partial(msg.text || "");
    } else if (msg.type === "translation") {
      handlers.translation(msg.utt, msg.text);
    }
  };
  const connect = () => {
    const socket = new WebSocket(url());
    state.socket = socket;
    socket.onmessage = onMessage;
    socket.onclose = (event) => {
      if (state.socket !== socket) return;
      state.attempt += 1;
      handlers.status(event.code === 1001 ? "captioning stopped; retrying…" : "reconnecting…");
      const delay = Math.min(10000, 500 * 2 ** Math.min(state.attempt, 5)) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  };
  handlers.status("connecting…");
  connect();
  return state;
}
