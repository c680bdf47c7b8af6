"use strict";

// Every piece of model, user or task text goes into the page through textContent only.

const RUN_KEY = "taskagent.run";
const API_KEY = "taskagent.apiKey";
const THREAD_KEY = "taskagent.thread";
const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 4000, 4000, 4000];

const $ = (id) => document.getElementById(id);
const log = $("log");
const form = $("composer");
const input = $("message");
const sendButton = $("send");

const state = {
  threadId: null,
  streaming: false,
  controller: null, // aborts the stream when the user leaves the thread
  turn: null, // the assistant block that events render into
  cards: new Map(), // tool call id -> card, across the whole view
  run: null, // {thread_id, run_id, last_event_id, events} while a run streams
};

// --- API access --------------------------------------------------------------------------------

// A server with API keys answers 401 until the page sends one: ask once, keep it for next time.
async function api(url, options = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const key = localStorage.getItem(API_KEY);
    const headers = { ...(options.headers || {}), ...(key ? { "X-Api-Key": key } : {}) };
    const response = await fetch(url, { ...options, headers });
    if (response.status !== 401 || attempt > 0) return response;
    const entered = window.prompt("This server needs an API key:");
    if (!entered) return response;
    localStorage.setItem(API_KEY, entered.trim());
  }
  throw new Error("unreachable");
}

// --- DOM helpers -----------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function scrollToEnd() {
  log.scrollTop = log.scrollHeight;
}

function clearLog() {
  log.replaceChildren();
  state.turn = null;
  state.cards.clear();
}

function addUser(text) {
  $("empty")?.remove();
  log.append(el("div", "msg user", text));
  scrollToEnd();
}

function newTurn() {
  $("empty")?.remove();
  const block = el("div", "msg assistant");
  const tools = el("div", "tools");
  const text = el("div", "text");
  const meta = el("div", "meta");
  block.append(tools, text, meta);
  log.append(block);
  state.turn = { block, tools, text, meta };
  return state.turn;
}

function turn() {
  return state.turn || newTurn();
}

function showError(message) {
  const line = el("div", "error", message);
  line.setAttribute("role", "alert");
  (state.turn ? state.turn.block : log).append(line);
  scrollToEnd();
}

function summarizeArgs(args) {
  return Object.entries(args || {})
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
}

function summarizeResult(result) {
  if (result === null || result === undefined) return "";
  if (typeof result !== "object") return String(result);
  if (result.ok === false) return result.error || "failed";
  if (result.task) return `${result.task.id} · ${result.task.title}`;
  if (result.deleted) return `deleted ${result.deleted.id} · ${result.deleted.title}`;
  if (Array.isArray(result.tasks)) {
    const ids = result.tasks.map((t) => t.id).join(", ");
    return `${result.count ?? result.tasks.length} task(s)${ids ? ": " + ids : ""}`;
  }
  return JSON.stringify(result);
}

function toolCard(id, tool, args) {
  let card = id ? state.cards.get(id) : undefined;
  if (card) return card;
  card = el("div", "card pending");
  card.append(el("span", "tool", tool), el("span", "args", summarizeArgs(args)));
  card.append(el("div", "result", "…"));
  turn().tools.append(card);
  if (id) state.cards.set(id, card);
  scrollToEnd();
  return card;
}

function fillCard(card, result) {
  const failed = result && typeof result === "object" && result.ok === false;
  card.classList.remove("pending");
  card.classList.add(failed ? "failed" : "ok");
  card.querySelector(".result").textContent = (failed ? "✗ " : "✓ ") + summarizeResult(result);
}

function showBadge(done) {
  const meta = turn().meta;
  meta.replaceChildren();
  if (!done.model_used) return;
  const badge = el("span", "badge", done.model_used);
  if (done.latency_ms) badge.title = `${Math.round(done.latency_ms)} ms`;
  meta.append(badge);
  if (done.fallback_used) meta.append(el("span", "badge fallback", "fallback"));
}

function showApproval(value) {
  const waiting = value.tool_call_id && state.cards.get(value.tool_call_id);
  if (waiting && waiting.classList.contains("pending")) {
    waiting.querySelector(".result").textContent = "waiting for approval";
  }
  const box = el("div", "approval");
  box.append(el("p", "question", value.question || `Approve ${value.tool}?`));
  if (value.task_id || value.title) {
    box.append(el("p", "subject", [value.task_id, value.title].filter(Boolean).join(" · ")));
  }
  const approve = el("button", "approve", "Approve");
  const reject = el("button", "reject", "Reject");
  for (const [button, approved] of [[approve, true], [reject, false]]) {
    button.type = "button";
    button.addEventListener("click", () => {
      if (state.streaming) return;
      approve.disabled = reject.disabled = true;
      box.classList.add("answered");
      box.append(el("p", "answer", approved ? "Approved" : "Rejected"));
      resume(approved, value);
    });
  }
  const actions = el("div", "actions");
  actions.append(approve, reject);
  box.append(actions);
  turn().block.append(box);
  scrollToEnd();
}

function setStreaming(on) {
  state.streaming = on;
  sendButton.disabled = on;
  document.body.classList.toggle("streaming", on);
}

// --- events ----------------------------------------------------------------------------------

function apply(kind, data) {
  switch (kind) {
    case "metadata":
      // A later attempt re-runs the step from its checkpoint: the partial text is void.
      if (data.attempt > 1) turn().text.textContent = "";
      break;
    case "token":
      turn().text.append(data.text);
      break;
    case "tool_call":
      toolCard(data.id, data.tool, data.arguments);
      break;
    case "tool_result":
      fillCard(toolCard(data.id, data.tool, {}), data.result);
      break;
    case "interrupt":
      showApproval(data.value || {});
      break;
    case "error":
      showError(data.message || "The run failed.");
      break;
    case "done":
      // The delivered answer wins over the streamed tokens: a streamed answer can be withdrawn
      // (it claimed a change that never happened) or get a fallback notice in front.
      if (data.message && !data.interrupt) turn().text.textContent = data.message;
      showBadge(data);
      break;
  }
  scrollToEnd();
}

// --- the persisted run: what a reload needs to pick the stream up again ------------------------

function saveRun() {
  if (state.run) localStorage.setItem(RUN_KEY, JSON.stringify(state.run));
  else localStorage.removeItem(RUN_KEY);
}

function loadRun() {
  try {
    return JSON.parse(localStorage.getItem(RUN_KEY) || "null");
  } catch {
    return null;
  }
}

function record(kind, data, id) {
  const run = state.run;
  if (!run) return;
  if (id !== undefined) run.last_event_id = id;
  const last = run.events[run.events.length - 1];
  if (kind === "token" && last && last.kind === "token") last.data = { text: last.data.text + data.text };
  else run.events.push({ kind, data });
  saveRun();
}

// --- SSE over fetch, so a rejoin can send Last-Event-ID ---------------------------------------

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let carry = ""; // a chunk may end between the "\r" and "\n" of one line break
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    let chunk = carry + decoder.decode(value, { stream: true });
    carry = chunk.endsWith("\r") ? "\r" : "";
    if (carry) chunk = chunk.slice(0, -1);
    buffer += chunk.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { kind: "message", data: [], id: undefined };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event.kind = val;
        else if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
      }
      if (event.data.length) yield event;
    }
  }
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// Reads one response to its end; returns true once the run is over (`done`, or an `error`
// after which the server closed the stream), false when the stream broke off mid-run.
async function consume(response) {
  let failed = false;
  for await (const event of sseEvents(response)) {
    let data;
    try {
      data = JSON.parse(event.data.join("\n"));
    } catch {
      continue;
    }
    if (event.kind === "metadata") {
      state.threadId = data.thread_id;
      localStorage.setItem(THREAD_KEY, data.thread_id);
      if (!state.run) state.run = { thread_id: data.thread_id, run_id: data.run_id, events: [] };
      state.run.run_id = data.run_id;
      if (!threadTitles.has(data.thread_id)) refreshThreads();
    }
    record(event.kind, data, event.id);
    apply(event.kind, data);
    if (event.kind === "done") return true;
    failed = event.kind === "error";
  }
  return failed;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Streams a run from `request` (the POST or a rejoin GET) and keeps rejoining on drops.
async function stream(request) {
  const controller = new AbortController();
  state.controller = controller;
  setStreaming(true);
  let failures = 0;
  let next = request;
  try {
    for (;;) {
      const seen = state.run?.last_event_id;
      try {
        const response = await next(controller.signal);
        if (!response.ok) {
          const detail = await errorDetail(response);
          if (!state.run?.last_event_id) {
            // Refused before the run started: an answer to show, not a drop to retry.
            showError(detail);
            break;
          }
          if (response.status < 500) {
            // The server no longer knows the run (e.g. it restarted): show what the thread holds.
            await openThread(state.run.thread_id, { keepRun: false });
            return;
          }
          throw new Error(detail);
        }
        const location = response.headers.get("Location");
        if (location && state.run === null) {
          const runId = location.split("/").slice(-2, -1)[0];
          state.run = { thread_id: state.threadId, run_id: runId, events: [] };
        }
        if (await consume(response)) break;
      } catch (err) {
        if (controller.signal.aborted) return;
        if (!state.run) {
          showError(`Could not reach the server: ${err.message}`);
          break;
        }
      }
      if (controller.signal.aborted) return;
      if (state.run.last_event_id !== seen) failures = 0;
      if (failures >= RETRY_DELAYS_MS.length) {
        showError("Lost the connection to the server. Reload the page to try again.");
        break;
      }
      await sleep(RETRY_DELAYS_MS[failures++]);
      if (controller.signal.aborted) return;
      next = rejoinRequest(state.run.run_id, state.run.last_event_id);
    }
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      state.run = null;
      saveRun();
      setStreaming(false);
      refreshThreads();
    }
  }
}

function rejoinRequest(runId, lastEventId) {
  return (signal) =>
    api(`/chat/runs/${encodeURIComponent(runId)}/stream`, {
      headers: lastEventId ? { "Last-Event-ID": String(lastEventId) } : {},
      signal,
    });
}

function postRequest(body) {
  return (signal) =>
    api("/chat/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal,
    });
}

// --- actions ---------------------------------------------------------------------------------

function send(text) {
  addUser(text);
  newTurn();
  state.run = null;
  const body = state.threadId ? { message: text, thread_id: state.threadId } : { message: text };
  return stream(postRequest(body));
}

// The answer names the question it answers, so it can never approve a different one.
function resume(approved, question) {
  newTurn();
  state.run = null;
  const answer = {
    approved,
    tool_call_id: question.tool_call_id,
    approval_id: question.approval_id,
  };
  return stream(postRequest({ thread_id: state.threadId, resume: answer }));
}

function leaveStream() {
  if (state.controller) state.controller.abort();
  state.controller = null;
  state.run = null;
  saveRun();
  setStreaming(false);
}

function newChat() {
  leaveStream();
  state.threadId = null;
  localStorage.removeItem(THREAD_KEY);
  clearLog();
  const empty = el("p", "empty", "New chat. Ask me to create, list, update or delete tasks.");
  empty.id = "empty";
  log.append(empty);
  $("thread-title").textContent = "New chat";
  markCurrentThread();
  input.focus();
}

function renderHistory(messages) {
  for (const message of messages) {
    if (message.role === "user") {
      addUser(message.content);
      state.turn = null;
    } else if (message.role === "assistant") {
      for (const call of message.tool_calls || []) toolCard(call.id, call.tool, call.arguments);
      if (message.content) turn().text.append(message.content);
      if (message.model_used) showBadge({ model_used: message.model_used });
    } else if (message.role === "tool") {
      fillCard(toolCard(message.tool_call_id, "tool", {}), message.result);
    }
  }
}

// The messages after the newest user message belong to a run that is (or was just) streaming;
// the stream renders them, so history stops there.
function untilLastUser(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === "user") return messages.slice(0, i + 1);
  }
  return messages;
}

async function openThread(threadId, { keepRun = true } = {}) {
  const stored = keepRun ? loadRun() : null;
  leaveStream();
  state.threadId = threadId;
  localStorage.setItem(THREAD_KEY, threadId);
  markCurrentThread();
  clearLog();
  let thread;
  try {
    const response = await api(`/chat/threads/${encodeURIComponent(threadId)}/messages`);
    if (!response.ok) {
      const detail = await errorDetail(response);
      if (response.status === 404) localStorage.removeItem(THREAD_KEY);
      showError(detail);
      return;
    }
    thread = await response.json();
  } catch (err) {
    showError(`Could not load the thread: ${err.message}`);
    return;
  }
  if (state.threadId !== threadId) return; // the user moved on meanwhile
  const title = threadTitles.get(threadId);
  $("thread-title").textContent = title || "Chat";

  const resumable =
    stored?.thread_id === threadId &&
    stored.last_event_id &&
    (!thread.active_run_id || thread.active_run_id === stored.run_id);
  const runId = resumable ? stored.run_id : thread.active_run_id;
  if (!runId) {
    renderHistory(thread.messages);
    if (thread.interrupt) showApproval(thread.interrupt);
    if (!thread.messages.length) log.append(el("p", "empty", "No messages yet."));
    return;
  }
  renderHistory(untilLastUser(thread.messages));
  newTurn();
  if (resumable) {
    // Redraw what this page had already shown, then ask only for what came after it.
    state.run = stored;
    for (const event of stored.events) apply(event.kind, event.data);
    await stream(rejoinRequest(stored.run_id, stored.last_event_id));
  } else {
    state.run = { thread_id: threadId, run_id: runId, events: [] };
    await stream(rejoinRequest(runId, null));
  }
}

// --- the thread list -------------------------------------------------------------------------

const threadTitles = new Map();

function markCurrentThread() {
  for (const item of $("threads").querySelectorAll("button")) {
    if (item.dataset.threadId === state.threadId) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
}

async function refreshThreads() {
  let threads;
  try {
    const response = await api("/chat/threads");
    if (!response.ok) return;
    threads = await response.json();
  } catch {
    return;
  }
  const list = $("threads");
  list.replaceChildren();
  for (const thread of threads) {
    const title = thread.title || "Untitled";
    threadTitles.set(thread.thread_id, title);
    const button = el("button", "thread");
    button.type = "button";
    button.dataset.threadId = thread.thread_id;
    button.title = title;
    button.append(el("span", "thread-title", title));
    if (thread.status && thread.status !== "idle") {
      button.append(el("span", `status ${thread.status}`, thread.status));
    }
    button.addEventListener("click", () => openThread(thread.thread_id));
    const item = el("li");
    item.append(button);
    list.append(item);
  }
  if (state.threadId && threadTitles.has(state.threadId)) {
    $("thread-title").textContent = threadTitles.get(state.threadId);
  }
  markCurrentThread();
}

// --- wiring ----------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || state.streaming) return;
  input.value = "";
  send(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

$("new-chat").addEventListener("click", newChat);

async function start() {
  await refreshThreads();
  const stored = loadRun();
  const threadId = stored?.thread_id || localStorage.getItem(THREAD_KEY);
  if (threadId) await openThread(threadId);
  input.focus();
}

start();
