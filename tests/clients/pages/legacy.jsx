// The legacy `useStream` of @langchain/langgraph-sdk/react, as its docs use it.
import { useStream } from "@langchain/langgraph-sdk/react";
import { useState } from "react";
import { createRoot } from "react-dom/client";

import { Approval, Composer, HumanMessage, apiUrl, keepThreadInUrl, textOf, threadInUrl } from "./shared.jsx";

function BranchSwitcher({ meta, onSelect }) {
  const options = meta?.branchOptions ?? [];
  if (options.length < 2) return null;
  const at = options.indexOf(meta.branch);
  return (
    <span className="branches">
      <button type="button" aria-label="Previous branch" disabled={at <= 0} onClick={() => onSelect(options[at - 1])}>‹</button>
      <span className="branch-at">{`${at + 1} / ${options.length}`}</span>
      <button type="button" aria-label="Next branch" disabled={at >= options.length - 1} onClick={() => onSelect(options[at + 1])}>›</button>
    </span>
  );
}

function App() {
  const [threadId, setThreadId] = useState(threadInUrl);
  const stream = useStream({
    apiUrl,
    assistantId: "agent",
    messagesKey: "messages",
    threadId,
    reconnectOnMount: true,
    // Branching reads each message's first checkpoint, so the whole (short) history.
    fetchStateHistory: { limit: 100 },
    onThreadId: (id) => {
      setThreadId(id);
      keepThreadInUrl(id);
    },
  });
  const send = (text) =>
    stream.submit(
      { messages: [{ type: "human", content: text }] },
      {
        optimisticValues: (prev) => ({
          ...prev,
          messages: [...(prev.messages ?? []), { type: "human", content: text }],
        }),
      },
    );
  const edit = (message, text) => {
    const parent = stream.getMessagesMetadata(message)?.firstSeenState?.parent_checkpoint;
    stream.submit({ messages: [{ type: "human", content: text }] }, { checkpoint: parent });
  };
  return (
    <main data-ready="true">
      <h1>legacy useStream</h1>
      <p className="status">{stream.isLoading ? "running" : "idle"}</p>
      <section className="messages">
        {stream.messages.map((message, index) => {
          const meta = stream.getMessagesMetadata(message, index);
          if (message.type === "human") {
            return (
              <HumanMessage key={message.id ?? index} text={textOf(message.content)} onEdit={(text) => edit(message, text)}>
                <BranchSwitcher meta={meta} onSelect={stream.setBranch} />
              </HumanMessage>
            );
          }
          if (message.type === "tool") {
            return <div key={message.id ?? index} className="tool-result">{`${message.name}: ${textOf(message.content)}`}</div>;
          }
          return (
            <div key={message.id ?? index} className="msg ai">
              {(message.tool_calls ?? []).map((call) => (
                <div key={call.id} className="tool-call">{`${call.name} ${JSON.stringify(call.args)}`}</div>
              ))}
              <span className="text">{textOf(message.content)}</span>
            </div>
          );
        })}
      </section>
      {stream.interrupt && !stream.isLoading ? (
        <Approval
          value={stream.interrupt.value}
          onAnswer={(approved) => stream.submit(undefined, { command: { resume: { approved } } })}
        />
      ) : null}
      {stream.error ? <p className="error">{String(stream.error)}</p> : null}
      <Composer busy={stream.isLoading} onSend={send} onStop={() => stream.stop()} />
    </main>
  );
}

createRoot(document.getElementById("root")).render(<App />);
