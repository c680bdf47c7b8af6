// The stock JS SDK (@langchain/langgraph-sdk) driving a server: the calls a JS app makes.
// Usage: node sdk_flow.mjs <server url>. Prints one JSON object of what it saw on stdout;
// pytest asserts on it and on the server's database.
import { Client } from "@langchain/langgraph-sdk";

const apiUrl = process.argv[2];
const client = new Client({ apiUrl });
const human = (text) => ({ messages: [{ role: "user", content: text }] });
const textOf = (message) =>
  typeof message.content === "string"
    ? message.content
    : message.content.map((block) => block.text ?? "").join("");
const lastAi = (values) => textOf(values.messages.filter((m) => m.type === "ai").at(-1));

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

const report = {};
// A failing call ends the script with the step it was at and the server's answer.
process.on("uncaughtException", async (error) => {
  const body = await error.response?.text?.().catch(() => null);
  process.stderr.write(`${JSON.stringify({ step: report.step, error: String(error), body })}\n`);
  process.exit(1);
});
const step = (name) => {
  report.step = name;
};

step("assistants.search");
const assistants = await client.assistants.search({ graphId: "agent" });
report.assistants = assistants.map((a) => ({ assistant_id: a.assistant_id, graph_id: a.graph_id }));

step("threads.create");
const thread = await client.threads.create();
report.thread_id = thread.thread_id;

step("runs.stream values/messages/updates");
// One run streamed in three modes: whole state, token deltas, per-node updates.
const created = await collect(
  client.runs.stream(thread.thread_id, "agent", {
    input: human("create a high priority task to renew the passport tomorrow"),
    streamMode: ["values", "messages", "updates"],
  }),
);
report.created = {
  events: [...new Set(created.map((p) => p.event))],
  ids: created.filter((p) => p.id !== undefined).map((p) => Number(p.id)),
  run_id: created.find((p) => p.event === "metadata")?.data.run_id ?? null,
  nodes: created.filter((p) => p.event === "updates").map((p) => Object.keys(p.data)[0]),
  partials: created.filter((p) => p.event === "messages/partial").length,
  streamed_text: created
    .filter((p) => p.event === "messages/partial")
    .map((p) => textOf(p.data[0]))
    .at(-1) ?? "",
  final_text: lastAi(created.filter((p) => p.event === "values").at(-1).data),
};

step("runs.stream interrupt");
// A delete asks for approval: the stream ends on an interrupt, the thread waits for it.
const asked = await collect(
  client.runs.stream(thread.thread_id, "agent", {
    input: human("delete TASK-0001"),
    streamMode: ["updates"],
  }),
);
const interrupted = asked.find((p) => p.event === "updates" && "__interrupt__" in p.data);
report.interrupt = interrupted ? interrupted.data.__interrupt__ : null;
const waiting = await client.threads.getState(thread.thread_id);
report.waiting = {
  next: waiting.next,
  interrupts: waiting.interrupts ?? [],
  status: (await client.threads.get(thread.thread_id)).status,
};

step("resume, joinStream, join");
// Approve from a background run, follow it with joinStream, then join for its result.
const resume = await client.runs.create(thread.thread_id, "agent", {
  command: { resume: { approved: true } },
  streamMode: ["values"],
});
const followed = await collect(client.runs.joinStream(thread.thread_id, resume.run_id));
const joined = await client.runs.join(thread.thread_id, resume.run_id);
report.resume = {
  run_id: resume.run_id,
  followed_events: [...new Set(followed.map((p) => p.event))],
  joined_text: lastAi(joined),
  run_status: (await client.runs.get(thread.thread_id, resume.run_id)).status,
  thread_status: (await client.threads.get(thread.thread_id)).status,
};

step("getState, getHistory");
const state = await client.threads.getState(thread.thread_id);
const history = await client.threads.getHistory(thread.thread_id, { limit: 100 });
report.history = {
  length: history.length,
  head_checkpoint_id: history[0]?.checkpoint.checkpoint_id ?? null,
  state_checkpoint_id: state.checkpoint.checkpoint_id,
  oldest_parent: history.at(-1)?.parent_checkpoint ?? null,
  human_messages: state.values.messages.filter((m) => m.type === "human").map(textOf),
};

step("done");
process.stdout.write(JSON.stringify(report) + "\n");
