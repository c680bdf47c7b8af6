"use strict";

// Shared by the page's scripts (loaded in order, deferred): API access and small DOM helpers.
// Every piece of model, user or task text goes into the page through textContent, except
// answers, which markdown.js renders from markdown into sanitised HTML.

const API_KEY = "taskagent.apiKey";

const $ = (id) => document.getElementById(id);

// A server with API keys answers 401 until the page sends one: ask once, keep it for next time.
async function api(url, options = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const key = localStorage.getItem(API_KEY);
    const headers = { ...(options.headers || {}), ...(key ? { "X-Api-Key": key } : {}) };
    const response = await fetch(url, { ...options, headers });
    if (response.status !== 401 || attempt > 0) return response;
    // Requests sent together all meet the 401: the first asks, the others use its answer.
    if (localStorage.getItem(API_KEY) !== key) continue;
    const entered = window.prompt("This server needs an API key:");
    if (!entered) return response;
    localStorage.setItem(API_KEY, entered.trim());
  }
  throw new Error("unreachable");
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function button(className, text, label) {
  const node = el("button", className, text);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  return node;
}

// The server's sentence for a refused request; never a stack trace or a JSON dump.
async function errorDetail(response) {
  if (response.status >= 500) return "The server had a problem. Please try again.";
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail[0]?.msg) return String(body.detail[0].msg);
  } catch {
    // fall through to the status line
  }
  return `The server refused the request (${response.status}).`;
}

// "just now", "2 min ago", "3 h ago", "yesterday", "4 days ago", else the date.
function relativeTime(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.round(hours / 24);
  if (days === 1) return "yesterday";
  if (days < 7) return `${days} days ago`;
  return new Date(then).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

// The one live region: finished answers and approvals only, never every token.
function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  // A fresh text node after a tick makes screen readers read a repeated sentence again.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}
