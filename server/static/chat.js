"use strict";

// The chat: streams runs over SSE, renders answers, approvals, stop, retry and the thread list.
// Loaded after common.js (api, el, $), markdown.js (renderMarkdown) and tasks.js (loadTasks).

const RUN_KEY = "taskagent.run";
const THREAD_KEY = "taskagent.thread";
const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 4000, 4000, 4000];
// After asking the server to stop, how long to wait for its stream to end before leaving it.
const STOP_GRACE_MS = 3000;

const log = $("log");
const form = $("composer");
const input = $("message");
const sendButton = $("send");
const stopButton = $("stop");

const state = {
  threadId: null,
  streaming: false,
  controller: null, // aborts the stream when the user leaves the thread
  turn: null, // the assistant block that events render into
  cards: new Map(), // tool call id -> card, across the whole view
  run: null, // {thread_id, run_id, last_event_id, events} while a run streams
  sending: null, // {text, user, turn} until the server accepted the message
  pending: null, // {value, box}: the approval the thread waits for
  lastText: "", // what was last sent, for Retry
  stopping: false,
};

// --- DOM helpers -----------------------------------------------------------------------------

function scrollToEnd() {
  log.scrollTop = log.scrollHeight;
}

function clearLog() {
  log.replaceChildren();
  state.turn = null;
  state.pending = null;
  state.cards.clear();
}

function addUser(text) {
  $("empty")?.remove();
  const node = el("div", "msg user", text);
  log.append(node);
  scrollToEnd();
  return node;
}

function newTurn() {
  $("empty")?.remove();
  const block = el("div", "msg assistant");
  const tools = el("div", "tools");
  const text = el("div", "text");
  const meta = el("div", "meta");
  block.append(tools, text, meta);
  log.append(block);
  state.turn = { block, tools, text, meta, raw: "" };
  return state.turn;
}

function turn() {
  return state.turn || newTurn();
}

function setAnswer(target, markdownText) {
  target.raw = markdownText;
  renderMarkdown(target.text, markdownText);
}

function showError(message, { retry = false } = {}) {
  const line = el("div", "error");
  line.setAttribute("role", "alert");
  line.append(el("span", null, message));
  if (retry) line.append(retryButton());
  (state.turn ? state.turn.block : log).append(line);
  scrollToEnd();
}

function retryButton() {
  const again = button("retry", "Retry");
  again.addEventListener("click", () => {
    if (state.streaming) return;
    const text = input.value.trim() || state.lastText;
    if (!text) return;
    hideNotice();
    input.value = "";
    autoGrow();
    send(text);
  });
  return again;
}

/** Show one sentence above the composer; a Retry button when trying again can help. */
function showNotice(message, { retry = false } = {}) {
  const notice = $("notice");
  notice.replaceChildren(el("span", null, message));
  if (retry) notice.append(retryButton());
  const close = button("close", "×", "Dismiss");
  close.addEventListener("click", hideNotice);
  notice.append(close);
  notice.classList.toggle("is-error", retry);
  notice.hidden = false;
}

function hideNotice() {
  $("notice").hidden = true;
  $("notice").replaceChildren();
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

// --- the fallback badge, in words ---------------------------------------------------------------

function answererName(model) {
  if (!model || model === "none") return "no model";
  if (model === "offline-engine") return "the built-in offline engine";
  return model;
}

// Tier labels read "ollama:llama3.2", "openai:gpt-4o-mini".
function tierName(label) {
  const [kind, ...model] = label.trim().split(":");
  const name = { ollama: "Ollama", openai: "The OpenAI-compatible model" }[kind] || kind;
  return model.length ? `${name} (${model.join(":")})` : name;
}

// A failure reads "label: ErrorType: detail"; the server's plain reasons ("label — unreachable")
// are preferred when it sends them.
function reasonOf(failure) {
  const [label, type = "", ...rest] = failure.split(": ");
  const text = `${type} ${rest.join(": ")}`.toLowerCase();
  let why = "failed";
  if (/connect|unreachable|refused|resolve/.test(text)) why = "unreachable";
  else if (/timeout|timed out/.test(text)) why = "timed out";
  else if (/429|rate/.test(text)) why = "rate-limited";
  else if (/circuit/.test(text)) why = "circuit open after repeated failures";
  return [label, why];
}

/** "Ollama didn't answer (unreachable), so the built-in offline engine answered." */
function explainFallback(done) {
  const plain = (done.fallback_reasons || []).map((r) => r.split(" — "));
  const reasons = plain.length ? plain : (done.failures || []).map(reasonOf);
  const who = answererName(done.model_used);
  if (!reasons.length) return `The first model could not answer, so ${who} answered.`;
  const failed = reasons.map(([label, why]) => `${tierName(label)} didn't answer (${why})`);
  return `${failed.join("; ")}, so ${who} answered.`;
}

function showBadge(done) {
  const meta = turn().meta;
  meta.replaceChildren();
  if (!done.model_used) return;
  const badge = el("span", "badge", done.model_used);
  if (done.latency_ms) badge.title = `${Math.round(done.latency_ms)} ms`;
  meta.append(badge);
  if (done.fallback_used) {
    const why = explainFallback(done);
    const fallback = el("span", "badge fallback", "fallback");
    fallback.title = why;
    meta.append(fallback, el("span", "fallback-why", why));
  }
}

// --- approvals -------------------------------------------------------------------------------

function answerApproval(box, words) {
  box.classList.add("answered");
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  box.querySelector(".hint")?.remove();
  box.append(el("p", "answer", words));
  if (state.pending?.box === box) state.pending = null;
}

function showApproval(value) {
  if (state.pending && state.pending.value.approval_id === value.approval_id) return;
  const waiting = value.tool_call_id && state.cards.get(value.tool_call_id);
  if (waiting && waiting.classList.contains("pending")) {
    waiting.querySelector(".result").textContent = "waiting for your answer";
  }
  const box = el("div", "approval");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Needs your answer");
  box.append(el("p", "question", value.question || `Approve ${value.tool}?`));
  if (value.task_id || value.title) {
    box.append(el("p", "subject", [value.task_id, value.title].filter(Boolean).join(" · ")));
  }
  const approve = button("approve", "Delete it");
  const reject = button("reject", "Keep it");
  for (const [choice, approved] of [[approve, true], [reject, false]]) {
    choice.addEventListener("click", () => {
      if (state.streaming) return;
      answerApproval(box, approved ? "You said: delete it." : "You said: keep it.");
      resume(approved, value);
    });
  }
  const actions = el("div", "actions");
  actions.append(approve, reject);
  box.append(actions, el("p", "hint", "Or type yes or no below."));
  turn().block.insertBefore(box, turn().meta);
  state.pending = { value, box };
  scrollToEnd();
}

// The server's 409 is one plain sentence; an older server's names its API: say it plainly.
function approvalNotice(detail) {
  const value = state.pending?.value;
  if (!/resume=|approved|\{/.test(detail) || !value) return detail;
  const what = [value.task_id, value.title && `"${value.title}"`].filter(Boolean).join(" ");
  return `Deleting ${what || "the task"} is waiting for your answer: say yes to delete it or no to keep it.`;
}

// --- streaming state -------------------------------------------------------------------------

function setStreaming(on) {
  state.streaming = on;
  sendButton.disabled = on;
  stopButton.hidden = !on;
  stopButton.disabled = false;
  document.body.classList.toggle("streaming", on);
  if (!on) state.stopping = false;
}

function apply(kind, data) {
  switch (kind) {
    case "metadata":
      // A later attempt re-runs the step from its checkpoint: the partial text is void.
      if (data.attempt > 1) setAnswer(turn(), "");
      break;
    case "token":
      setAnswer(turn(), turn().raw + data.text);
      break;
    case "tool_call":
      toolCard(data.id, data.tool, data.arguments);
      break;
    case "tool_result":
      fillCard(toolCard(data.id, data.tool, {}), data.result);
      onToolResult(data.tool);
      break;
    case "interrupt":
      showApproval(data.value || {});
      break;
    case "error":
      // The run the user stopped ends with an error event; the "stopped" badge says it better.
      if (state.stopping) break;
      showError(data.message || "The answer failed.", { retry: true });
      // The words are not lost: they wait in the composer for Retry or an edit.
      if (state.sending === null && state.lastText && !input.value.trim()) {
        input.value = state.lastText;
        autoGrow();
      }
      break;
    case "done":
      // The delivered answer wins over the streamed tokens: a streamed answer can be withdrawn
      // (it claimed a change that never happened) or get a fallback notice in front.
      if (data.message && !data.interrupt) setAnswer(turn(), data.message);
      showBadge(data);
      break;
  }
  scrollToEnd();
}

// Finished answers and approvals are announced once; tokens never are.
function announceEnd(kind, data) {
  if (kind === "done" && data.interrupt) {
    const question = String(data.interrupt.question || data.message || "").replace(/[.?!]*$/, "?");
    announce(`Needs your answer: ${question} Say yes or no.`);
  } else if (kind === "done") {
    announce(`Answer: ${turn().text.textContent.slice(0, 400)}`);
  } else if (kind === "error" && !state.stopping) {
    announce(data.message || "The answer failed.");
  }
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

// The server accepted the message: it is in the thread now, and so is a pending answer.
function accepted() {
  const sending = state.sending;
  state.sending = null;
  if (sending && state.pending) answerApproval(state.pending.box, `You said: ${sending.text}`);
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
      accepted();
      state.threadId = data.thread_id;
      localStorage.setItem(THREAD_KEY, data.thread_id);
      if (!state.run) state.run = { thread_id: data.thread_id, run_id: data.run_id, events: [] };
      state.run.run_id = data.run_id;
      if (state.stopping) cancelRun(data.run_id);
      if (!threadTitles.has(data.thread_id)) refreshThreads();
    }
    record(event.kind, data, event.id);
    apply(event.kind, data);
    announceEnd(event.kind, data);
    if (event.kind === "done") return true;
    failed = event.kind === "error";
  }
  return failed;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The message never became part of the thread: take it back into the composer, say why.
function refused(status, detail) {
  const sending = state.sending;
  state.sending = null;
  if (sending) {
    sending.user.remove();
    sending.turn.block.remove();
    state.turn = null;
    if (!input.value.trim()) {
      input.value = sending.text;
      autoGrow();
    }
    if (!log.querySelector(".msg")) newChatHint();
  }
  if (status === 409 && state.pending) showNotice(approvalNotice(detail));
  else showNotice(detail, { retry: Boolean(sending) && status !== 409 && status !== 422 });
}

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
            if (state.sending) refused(response.status, detail);
            else showError(detail);
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
          if (state.sending) refused(0, "Could not reach the server. Check it is running, then retry.");
          else showError("Could not reach the server.", { retry: true });
          break;
        }
      }
      if (controller.signal.aborted) return;
      if (state.stopping) break;
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
    if (state.controller === controller) finishStream(controller);
  }
}

function finishStream(controller) {
  if (state.stopping && state.turn && !state.turn.meta.querySelector(".badge")) {
    state.turn.meta.append(el("span", "badge stopped", "stopped"));
    if (!state.turn.raw) setAnswer(state.turn, "Stopped.");
    announce("Stopped.");
  }
  if (state.controller === controller) state.controller = null;
  state.run = null;
  state.sending = null;
  saveRun();
  setStreaming(false);
  refreshThreads();
  loadTasks();
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
  hideNotice();
  state.lastText = text;
  const user = addUser(text);
  const answer = newTurn();
  state.sending = { text, user, turn: answer };
  state.run = null;
  const body = state.threadId ? { message: text, thread_id: state.threadId } : { message: text };
  return stream(postRequest(body));
}

// The answer names the question it answers, so it can never approve a different one.
function resume(approved, question) {
  hideNotice();
  newTurn();
  state.run = null;
  const answer = {
    approved,
    tool_call_id: question.tool_call_id,
    approval_id: question.approval_id,
  };
  return stream(postRequest({ thread_id: state.threadId, resume: answer }));
}

async function cancelRun(runId) {
  try {
    await api(`/chat/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" });
  } catch {
    // leaving the stream below still frees the page
  }
}

/** Stop the running answer: the server cancels the run and ends its stream. */
async function stop() {
  if (!state.streaming || state.stopping) return;
  state.stopping = true;
  stopButton.disabled = true;
  const controller = state.controller;
  const runId = state.run?.run_id;
  if (runId) await cancelRun(runId);
  await sleep(STOP_GRACE_MS);
  if (state.controller === controller && controller && state.stopping) {
    controller.abort();
    finishStream(controller);
  }
}

function leaveStream() {
  if (state.controller) state.controller.abort();
  state.controller = null;
  state.run = null;
  state.sending = null;
  saveRun();
  setStreaming(false);
}

function newChatHint() {
  const empty = el("p", "empty", "New chat. Ask me to create, list, update or delete tasks.");
  empty.id = "empty";
  log.append(empty);
}

function newChat() {
  leaveStream();
  hideNotice();
  state.threadId = null;
  localStorage.removeItem(THREAD_KEY);
  clearLog();
  newChatHint();
  $("thread-title").textContent = "New chat";
  markCurrentThread();
  document.body.classList.remove("show-threads");
  input.focus();
}

function renderHistory(messages) {
  for (const message of messages) {
    if (message.role === "user") {
      addUser(message.content);
      state.turn = null;
    } else if (message.role === "assistant") {
      for (const call of message.tool_calls || []) toolCard(call.id, call.tool, call.arguments);
      if (message.content) setAnswer(turn(), turn().raw + message.content);
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
  hideNotice();
  document.body.classList.remove("show-threads");
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
  } catch {
    showError("Could not load the chat: the server did not answer.");
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
let threadRows = [];
let searchSeq = 0;

function markCurrentThread() {
  for (const item of $("threads").querySelectorAll("button.thread")) {
    if (item.dataset.threadId === state.threadId) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
}

function statusBadge(thread) {
  if (thread.waiting_approval || thread.status === "interrupted") {
    return el("span", "status waiting", "needs your answer");
  }
  if (thread.status === "busy") return el("span", "status busy", "answering…");
  if (thread.status === "error") return el("span", "status failed", "failed");
  return null;
}

function threadRow(thread) {
  const title = thread.title || "Untitled";
  const item = el("li", "thread-item");
  const open = el("button", "thread");
  open.type = "button";
  open.dataset.threadId = thread.thread_id;
  open.title = title;
  open.append(el("span", "thread-title", title));
  const when = el("span", "thread-time", relativeTime(thread.updated_at || thread.created_at));
  if (thread.updated_at) when.title = new Date(thread.updated_at).toLocaleString();
  open.append(when);
  const badge = statusBadge(thread);
  if (badge) open.append(badge);
  open.addEventListener("click", () => openThread(thread.thread_id));
  const rename = button("thread-action rename", "✎", `Rename chat: ${title}`);
  rename.addEventListener("click", () => startRename(item, thread));
  const remove = button("thread-action delete", "🗑", `Delete chat: ${title}`);
  remove.addEventListener("click", () => confirmDelete(item, thread));
  item.append(open, rename, remove);
  return item;
}

function renderThreads() {
  const list = $("threads");
  if (list.querySelector(".thread-edit, .thread-confirm")) return; // never under the user's hands
  list.replaceChildren(...threadRows.map(threadRow));
  $("threads-empty").hidden = threadRows.length > 0;
  markCurrentThread();
}

async function refreshThreads() {
  const query = $("thread-search").value.trim();
  const seq = ++searchSeq;
  let threads;
  try {
    const response = await api(query ? `/chat/threads?q=${encodeURIComponent(query)}` : "/chat/threads");
    if (!response.ok) return;
    threads = await response.json();
  } catch {
    return;
  }
  if (seq !== searchSeq) return; // a newer search answered first
  for (const thread of threads) threadTitles.set(thread.thread_id, thread.title || "Untitled");
  threadRows = threads;
  renderThreads();
  if (state.threadId && threadTitles.has(state.threadId)) {
    $("thread-title").textContent = threadTitles.get(state.threadId);
  }
}

function startRename(item, thread) {
  const formEl = el("form", "thread-edit");
  const field = el("input");
  field.value = thread.title || "";
  field.maxLength = 120;
  field.setAttribute("aria-label", "New chat title");
  const save = el("button", "save", "Save");
  save.type = "submit";
  const cancel = button("cancel", "Cancel");
  formEl.append(field, save, cancel);
  item.replaceChildren(formEl);
  field.focus();
  field.select();
  let done = false;
  const close = () => {
    done = true;
    formEl.remove();
    renderThreads();
  };
  cancel.addEventListener("click", close);
  field.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  });
  formEl.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (done) return;
    const title = field.value.trim();
    if (!title) {
      showNotice("A chat title needs at least one character.");
      return;
    }
    const response = await api(`/chat/threads/${encodeURIComponent(thread.thread_id)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title }),
    });
    if (!response.ok) {
      showNotice(await errorDetail(response));
      return;
    }
    close();
    await refreshThreads();
  });
}

function confirmDelete(item, thread) {
  const box = el("div", "thread-confirm");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `Delete chat: ${thread.title || "Untitled"}`);
  box.append(el("span", null, "Delete this chat?"));
  const yes = button("confirm-delete", "Delete");
  const no = button("cancel", "Cancel");
  box.append(yes, no);
  item.replaceChildren(box);
  no.focus();
  const close = () => {
    box.remove();
    renderThreads();
  };
  no.addEventListener("click", close);
  yes.addEventListener("click", async () => {
    const response = await api(`/chat/threads/${encodeURIComponent(thread.thread_id)}`, {
      method: "DELETE",
    });
    if (!response.ok && response.status !== 404) {
      close();
      showNotice(await errorDetail(response));
      return;
    }
    threadTitles.delete(thread.thread_id);
    threadRows = threadRows.filter((t) => t.thread_id !== thread.thread_id);
    close();
    if (state.threadId === thread.thread_id) newChat();
    await refreshThreads();
  });
}

// --- wiring ----------------------------------------------------------------------------------

function autoGrow() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 240)}px`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || state.streaming) return;
  input.value = "";
  autoGrow();
  send(text);
});

input.addEventListener("input", autoGrow);
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", stop);
$("new-chat").addEventListener("click", newChat);

let searchTimer = null;
$("thread-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(refreshThreads, 200);
});

function togglePanel(name, buttonId) {
  const open = !document.body.classList.contains(name);
  document.body.classList.remove("show-threads", "show-tasks");
  document.body.classList.toggle(name, open);
  for (const id of ["toggle-threads", "toggle-tasks"]) {
    $(id).setAttribute("aria-expanded", String(open && id === buttonId));
  }
}
$("toggle-threads").addEventListener("click", () => togglePanel("show-threads", "toggle-threads"));
$("toggle-tasks").addEventListener("click", () => togglePanel("show-tasks", "toggle-tasks"));

const typing = (target) =>
  target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    if (state.streaming) {
      event.preventDefault();
      stop();
    } else if (document.body.classList.contains("show-threads") || document.body.classList.contains("show-tasks")) {
      document.body.classList.remove("show-threads", "show-tasks");
    }
    return;
  }
  if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
    event.preventDefault();
    newChat();
    return;
  }
  if (event.key === "/" && !event.ctrlKey && !event.metaKey && !typing(event.target)) {
    event.preventDefault();
    document.body.classList.add("show-threads");
    $("thread-search").focus();
  }
});

setInterval(() => {
  if (document.visibilityState === "visible") renderThreads();
}, 60_000);

async function start() {
  loadTasks();
  await refreshThreads();
  const stored = loadRun();
  const threadId = stored?.thread_id || localStorage.getItem(THREAD_KEY);
  if (threadId) await openThread(threadId);
  input.focus();
}

start();
