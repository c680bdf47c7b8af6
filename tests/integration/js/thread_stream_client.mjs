// The stock @langchain/langgraph-sdk 1.x thread-stream client (what useStream runs on) against
// our server: a run with streamed messages and tool calls, an approval interrupt answered
// with input.respond, and state.get. Prints one JSON line for the Python test to check.
// Usage: node thread_stream_client.mjs <server url> <api key>
import { Client } from "@langchain/langgraph-sdk";

const [apiUrl, apiKey] = process.argv.slice(2);
const CREATE = "Create a task called write the quarterly report";
const DELETE = "delete the quarterly report task";

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(predicate, what, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const client = new Client({ apiUrl, apiKey });
const thread = client.threads.stream({ assistantId: "agent" });
const report = { thread_id: thread.threadId };

// Projections opened before the run, as useStream does: they follow it to its end.
const texts = (async () => {
  const out = [];
  for await (const message of thread.messages) out.push(await message.text);
  return out;
})();
const toolCalls = (async () => {
  // The SDK yields a call when it starts and again when it finishes: one entry per call id.
  const byId = new Map();
  for await (const call of thread.toolCalls) {
    const output = await call.output;
    byId.set(call.callId, { name: call.name, ok: /TASK-\d{4}/.test(JSON.stringify(output)) });
  }
  return [...byId.values()];
})();
await thread.run.start({ input: { messages: [{ role: "user", content: CREATE }] } });
report.texts = await within(30000, texts, "messages");
report.tool_calls = await within(30000, toolCalls, "tool calls");
const output = await within(30000, thread.output, "output");
report.output_last = output.messages.at(-1).content;

// A delete asks for approval on the input channel; input.respond answers it.
await thread.run.start({ input: { messages: [{ role: "user", content: DELETE }] } });
await until(() => thread.interrupted && thread.interrupts.length > 0, "interrupt");
const asked = thread.interrupts[0];
report.interrupt = asked.payload;
const lifecycle = await thread.subscribe(["lifecycle"]);
await thread.input.respond({
  interrupt_id: asked.interruptId,
  namespace: [],
  response: { approved: true },
});
await within(30000, (async () => {
  let runs = 0;
  for await (const event of lifecycle) {
    if (event.params.namespace.length === 0 && event.params.data.event === "running") runs += 1;
    if (runs === 3 && event.params.namespace.length === 0 && event.params.data.event === "completed") return;
  }
  throw new Error("lifecycle ended before the resumed run completed");
})(), "resumed run");
const state = await thread.state.get({ namespace: [] });
report.final_last = state.values.messages.at(-1).content;
await thread.close();
console.log(JSON.stringify(report));
