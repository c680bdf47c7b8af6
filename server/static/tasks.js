"use strict";

// The task panel: the user's tasks beside the chat, filtered through GET /tasks, completed with
// a checkbox, opened for details; refreshed when a task tool ran, on focus and every 30 s.

const TASK_TOOLS = new Set(["create_task", "update_task", "complete_task", "delete_task"]);
const TASK_REFRESH_MS = 30_000;

const tasks = {
  loading: null,
  again: false,
  openId: null,
};

function isoDay(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 10);
}

function taskQuery() {
  const params = new URLSearchParams({ limit: "100" });
  const status = $("filter-status").value;
  const priority = $("filter-priority").value;
  const due = $("filter-due").value;
  if (status) params.set("status", status);
  if (priority) params.set("priority", priority);
  const today = new Date();
  if (due === "overdue") params.set("overdue", "true");
  if (due === "today") params.set("due_before", isoDay(today));
  if (due === "week") params.set("due_before", isoDay(new Date(today.getTime() + 7 * 86_400_000)));
  if (due === "today" || due === "week") params.set("due_after", isoDay(today));
  return params;
}

function isOverdue(task) {
  return task.status !== "completed" && task.due_date && task.due_date < isoDay(new Date());
}

function dueWords(task) {
  if (!task.due_date) return "";
  const today = isoDay(new Date());
  if (task.due_date === today) return "due today";
  if (isOverdue(task)) return `overdue · ${task.due_date}`;
  return `due ${task.due_date}`;
}

function taskRow(task) {
  const item = el("li", "task");
  item.dataset.taskId = task.id;
  item.classList.toggle("done", task.status === "completed");
  item.classList.toggle("overdue", Boolean(isOverdue(task)));
  const box = el("input");
  box.type = "checkbox";
  box.checked = task.status === "completed";
  box.disabled = task.status === "completed";
  box.setAttribute("aria-label", `Complete ${task.id}: ${task.title}`);
  box.addEventListener("change", () => completeTask(task, box));
  const open = button("task-open");
  open.title = `Open ${task.id}`;
  open.append(el("span", "task-title", task.title));
  const meta = el("span", "task-meta");
  meta.append(el("span", `prio ${task.priority}`, task.priority));
  const due = dueWords(task);
  if (due) meta.append(el("span", "due", due));
  open.append(meta);
  open.setAttribute("aria-expanded", String(tasks.openId === task.id));
  open.addEventListener("click", () => openTask(task.id));
  item.append(box, open);
  return item;
}

async function loadTasks() {
  // One request at a time; a refresh asked meanwhile runs once after it.
  if (tasks.loading) {
    tasks.again = true;
    return tasks.loading;
  }
  tasks.loading = (async () => {
    try {
      const response = await api(`/tasks?${taskQuery()}`);
      if (!response.ok) return;
      const body = await response.json();
      const list = $("task-list");
      list.replaceChildren(...body.tasks.map(taskRow));
      $("tasks-empty").hidden = body.tasks.length > 0;
      $("task-count").textContent = body.total > body.count ? `${body.count} of ${body.total}` : String(body.count);
      if (tasks.openId && !body.tasks.some((t) => t.id === tasks.openId)) closeTask();
      else if (tasks.openId) openTask(tasks.openId, { toggle: false });
    } catch {
      // the next refresh tries again
    } finally {
      tasks.loading = null;
    }
  })();
  await tasks.loading;
  if (tasks.again) {
    tasks.again = false;
    await loadTasks();
  }
}

async function completeTask(task, box) {
  box.disabled = true;
  const response = await api(`/tasks/${encodeURIComponent(task.id)}/complete`, { method: "POST" });
  if (!response.ok) {
    box.checked = false;
    box.disabled = false;
    showNotice(await errorDetail(response));
    return;
  }
  announce(`Completed ${task.id}: ${task.title}`);
  await loadTasks();
}

function closeTask() {
  tasks.openId = null;
  $("task-detail").hidden = true;
  $("task-detail").replaceChildren();
  for (const open of document.querySelectorAll(".task-open")) open.setAttribute("aria-expanded", "false");
}

async function openTask(taskId, { toggle = true } = {}) {
  if (toggle && tasks.openId === taskId) {
    closeTask();
    return;
  }
  tasks.openId = taskId;
  for (const open of document.querySelectorAll(".task-open")) {
    open.setAttribute("aria-expanded", String(open.closest(".task").dataset.taskId === taskId));
  }
  const response = await api(`/tasks/${encodeURIComponent(taskId)}`);
  if (tasks.openId !== taskId) return;
  if (!response.ok) {
    closeTask();
    return;
  }
  const task = await response.json();
  const detail = $("task-detail");
  const head = el("div", "detail-head");
  head.append(el("h3", null, task.title), button("close", "×", "Close task details"));
  head.lastChild.addEventListener("click", closeTask);
  const facts = el("dl");
  const rows = [
    ["Id", task.id],
    ["Status", task.status.replace("_", " ")],
    ["Priority", task.priority],
    ["Due", task.due_date || "—"],
    ["Tags", task.tags.length ? task.tags.join(", ") : "—"],
    ["Created", relativeTime(task.created_at)],
  ];
  if (task.completed_at) rows.push(["Completed", relativeTime(task.completed_at)]);
  for (const [name, value] of rows) facts.append(el("dt", null, name), el("dd", null, value));
  detail.replaceChildren(head);
  if (task.description) detail.append(el("p", "description", task.description));
  detail.append(facts);
  detail.hidden = false;
}

/** Refresh the panel when a tool that changes tasks reported its result. */
function onToolResult(tool) {
  if (TASK_TOOLS.has(tool)) loadTasks();
}

for (const id of ["filter-status", "filter-priority", "filter-due"]) {
  $(id).addEventListener("change", () => loadTasks());
}
window.addEventListener("focus", () => loadTasks());
setInterval(() => {
  if (document.visibilityState === "visible") loadTasks();
}, TASK_REFRESH_MS);
