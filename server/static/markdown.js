"use strict";

// Answers are markdown (a real model writes lists, bold and code). marked renders them and
// DOMPurify sanitises the HTML. Raw HTML in an answer is shown as the text it is, never as
// markup: an answer that quotes a task title like `<img onerror=…>` shows those characters.

const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const markdown = new marked.Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
  },
});

const PURIFY = {
  ALLOWED_TAGS: ["p", "br", "strong", "em", "del", "code", "pre", "ul", "ol", "li", "blockquote",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "hr",
    "input"],
  ALLOWED_ATTR: ["href", "title", "type", "checked", "disabled", "start", "align"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
};

// Links open in a new tab and never pass the page on.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Render `text` (markdown) into `node` as sanitised HTML. */
function renderMarkdown(node, text) {
  const html = markdown.parse(String(text || "")).trim();
  node.replaceChildren(DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true }));
  node.dataset.markdown = String(text || "");
}
