// The thread-centric `useStream` of @langchain/react 1.x (commands + stream/events).
import { useMessageMetadata, useStream } from "@langchain/react";
import { useState } from "react";
import { createRoot } from "react-dom/client";

import { Approval, Composer, HumanMessage, apiUrl, keepThreadInUrl, textOf, threadInUrl } from "./shared.jsx";

/** The checkpoint before `message`: from the stream's metadata, else the thread's history. */
async function forkPoint(stream, message, meta) {
  if (meta?.parentCheckpointId) return meta.parentCheckpointId;
  // Servers that send no `checkpoints` events (langgraph dev 0.16.7) leave the metadata empty.
  const history = await stream.client.threads.getHistory(stream.threadId, { limit: 100 });
  const holds = (state) => (state.values?.messages ?? []).some((m) => m.id === message.id);
  return history.findLast(holds)?.parent_checkpoint?.checkpoint_id;
}

function Human({ stream, message }) {
  const meta = useMessageMetadata(stream, message.id);
  const edit = async (text) => {
    const forkFrom = await forkPoint(stream, message, meta);
    await stream.submit({ messages: [{ type: "human", content: text }] }, { forkFrom });
  };
  return <HumanMessage text={textOf(message.content)} onEdit={edit} />;
}

function App() {
  const [threadId, setThreadId] = useState(threadInUrl);
  const stream = useStream({
    apiUrl,
    assistantId: "agent",
    threadId,
    onThreadId: (id) => {
      setThreadId(id);
      keepThreadInUrl(id);
    },
  });
  const send = (text) => stream.submit({ messages: [{ type: "human", content: text }] });
  return (
    <main data-ready="true">
      <h1>@langchain/react useStream</h1>
      <p className="status">{stream.isLoading ? "running" : "idle"}</p>
      <section className="messages">
        {stream.messages.map((message, index) => {
          const type = message.type ?? message._getType?.();
          if (type === "human") return <Human key={message.id ?? index} stream={stream} message={message} />;
          if (type === "tool") {
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
      <section className="tool-calls">
        {stream.toolCalls.map((call) => (
          <div key={call.id ?? call.callId} className="tool-status">{`${call.name} ${call.status ?? ""}`}</div>
        ))}
      </section>
      {stream.interrupt && !stream.isLoading ? (
        <Approval
          value={stream.interrupt.value}
          onAnswer={(approved) => stream.respond({ approved })}
        />
      ) : null}
      {stream.error ? <p className="error">{String(stream.error)}</p> : null}
      <Composer busy={stream.isLoading} onSend={send} onStop={() => stream.stop()} />
    </main>
  );
}

createRoot(document.getElementById("root")).render(<App />);
