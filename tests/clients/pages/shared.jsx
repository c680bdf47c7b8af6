// What both pages share: where the server is, the thread in the URL, and the message form.
import { useState } from "react";

const params = new URLSearchParams(window.location.search);

/** The server's URL: another origin than the page's (`?api=`). */
export const apiUrl = params.get("api");

/** The thread the URL names (`?thread=`), so a reload reopens it. */
export const threadInUrl = params.get("thread");

/** Remember the thread in the URL without reloading. */
export function keepThreadInUrl(threadId) {
  const url = new URL(window.location.href);
  url.searchParams.set("thread", threadId);
  window.history.replaceState(null, "", url);
}

/** Plain text of a message's content: a string or a list of content blocks. */
export function textOf(content) {
  if (typeof content === "string") return content;
  return (content ?? []).map((block) => (typeof block === "string" ? block : block.text ?? "")).join("");
}

/** A text box and Send (Enter), with Stop while a run is live. */
export function Composer({ busy, onSend, onStop }) {
  const [text, setText] = useState("");
  const send = (event) => {
    event.preventDefault();
    if (!text.trim() || busy) return;
    onSend(text);
    setText("");
  };
  return (
    <form onSubmit={send}>
      <input aria-label="Message" value={text} onChange={(e) => setText(e.target.value)} />
      <button type="submit" disabled={busy}>Send</button>
      {busy ? <button type="button" onClick={onStop}>Stop</button> : null}
    </form>
  );
}

/** A human message with an Edit button that resubmits it changed, on a new branch. */
export function HumanMessage({ text, onEdit, children }) {
  const [draft, setDraft] = useState(null);
  if (draft !== null) {
    return (
      <div className="msg human editing">
        <input aria-label="Edit message" value={draft} onChange={(e) => setDraft(e.target.value)} />
        <button type="button" onClick={() => { onEdit(draft); setDraft(null); }}>Save</button>
      </div>
    );
  }
  return (
    <div className="msg human">
      <span className="text">{text}</span>
      <button type="button" onClick={() => setDraft(text)}>Edit</button>
      {children}
    </div>
  );
}

/** The pending approval: what is asked, Approve and Reject. */
export function Approval({ value, onAnswer }) {
  return (
    <div className="interrupt" role="alert">
      <pre className="question">{JSON.stringify(value)}</pre>
      <button type="button" onClick={() => onAnswer(true)}>Approve</button>
      <button type="button" onClick={() => onAnswer(false)}>Reject</button>
    </div>
  );
}
