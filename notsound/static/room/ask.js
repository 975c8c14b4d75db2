// The Ask panel: the lecture's conversation (the store of `notsound ask`), a question streamed as
// NDJSON ({"delta"} ..., then {"done", "answer", "citations"} or {"error"}); each citation in an
// answer becomes a link that seeks to the cited caption. Answers are set as text, never as HTML.
"use strict";

import { $, el, stamp, getJSON } from "./common.js";

function escapeRe(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

/** The answer text with each citation label as an a.seek link (clicks are handled by the page). */
export function answerNodes(answer, citations) {
  const out = document.createDocumentFragment();
  const byLabel = new Map();
  for (const c of citations || []) if (c && c.label && !byLabel.has(c.label)) byLabel.set(c.label, c);
  if (!byLabel.size) { out.append(document.createTextNode(answer)); return out; }
  const pattern = new RegExp("(" + [...byLabel.keys()].map(escapeRe).join("|") + ")", "g");
  const used = new Set();
  for (const piece of String(answer).split(pattern)) {
    const c = byLabel.get(piece);
    if (!c) { if (piece) out.append(document.createTextNode(piece)); continue; }
    out.append(citeLink(c));
    used.add(piece);
  }
  const rest = [...byLabel.values()].filter((c) => !used.has(c.label));
  if (rest.length) {
    out.append(document.createTextNode(" Sources: "));
    rest.forEach((c, i) => { if (i) out.append(document.createTextNode(", ")); out.append(citeLink(c)); });
  }
  return out;
}

function citeLink(c) {
  const a = el("a", "seek cite", c.label);
  a.href = "#t=" + Number(c.t);
  a.dataset.t = String(c.t);
  if (c.utt !== undefined && c.utt !== null) a.dataset.utt = String(c.utt);
  a.setAttribute("aria-label", c.label + ": play from " + stamp(c.t).slice(1, -1));
  return a;
}

function turnItem(question) {
  const li = el("li", "turn");
  li.append(el("p", "q", question));
  const answer = el("div", "a");
  li.append(answer);
  $("turns").append(li);
  return answer;
}

async function* lines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
    if (done) break;
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}

async function send(url, question) {
  const answer = turnItem(question);
  answer.setAttribute("aria-busy", "true");
  const status = $("ask-status");
  status.textContent = "Answering…";
  let text = "";
  try {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ question: question }),
    });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    for await (const msg of lines(response)) {
      if (msg.error) throw new Error(msg.error);
      if (typeof msg.delta === "string") { text += msg.delta; answer.textContent = text; }
      if (msg.done) { answer.replaceChildren(answerNodes(msg.answer || text, msg.citations)); }
    }
    status.textContent = "Answered.";
  } catch (e) {
    answer.replaceChildren(el("p", "error", "No answer: " + e.message));
    status.textContent = "No answer: " + e.message;
  } finally {
    answer.removeAttribute("aria-busy");
  }
}

export async function wireAsk(name) {
  const url = "/api/lectures/" + encodeURIComponent(name) + "/ask";
  $("ask").hidden = false;
  const form = $("ask-form"), box = $("question"), button = $("ask-send");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const question = box.value.trim();
    if (!question) return;
    button.disabled = true;
    box.value = "";
    try { await send(url, question); } finally { button.disabled = false; box.focus(); }
  });
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  try {
    const data = await getJSON(url);
    for (const turn of data.turns || []) turnItem(turn.question).append(answerNodes(turn.answer, turn.citations));
  } catch (e) {
    $("ask-status").textContent = "Cannot load the conversation: " + e.message;
  }
}
