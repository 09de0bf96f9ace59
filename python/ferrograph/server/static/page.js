// The ferrograph page: picks a graph and a thread, runs the graph with the server's own API
// (POST /threads/{id}/runs/stream, read as server-sent events), shows each node's tokens in
// its own lane, answers interrupts, and lists the thread's checkpoints.
"use strict";

const $ = (id) => document.getElementById(id);
const SPECIAL_NODES = new Set(["__start__", "__end__"]);

let assistants = [];
let graphNodes = [];
// Each load counts itself, so an older one that answers late does not undo a newer one.
let assistantLoads = 0;
let threadLoads = 0;

// --- the API ---------------------------------------------------------------------------

// The caller's credentials: a bearer token for a server with custom auth (kept for the
// browser tab's session only).
function authHeaders() {
  const token = $("token").value.trim();
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function api(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  }
  return response.json();
}

// The server-sent events of a response, as {event, data} with data parsed from JSON.
// Lines end in \r\n, \r or \n; a \r at the end of a chunk may be half of a \r\n, so it
// waits for the next chunk.
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    let text = pending + value;
    const heldCr = text.endsWith("\r") ? "\r" : "";
    if (heldCr) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\r|\n/);
    pending = lines.pop() + heldCr;
    for (const line of lines) {
      if (line === "") {
        if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
      if (fieldValue.startsWith(" ")) fieldValue = fieldValue.slice(1);
      if (field === "event") event = fieldValue;
      else if (field === "data") data.push(fieldValue);
    }
  }
}

// --- small helpers -----------------------------------------------------------------------

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
  $("error").hidden = !error;
}

function setStatus(status) {
  $("run-status").textContent = status;
  $("run-status").className = status;
}

function setRunning(value) {
  for (const id of ["send", "resume-send", "new-thread", "assistant", "thread"]) {
    $(id).disabled = value;
  }
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function currentAssistant() {
  return assistants.find((a) => a.assistant_id === $("assistant").value);
}

// A message chunk's text: a string, or the text blocks of a list of content blocks.
function chunkText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((b) => (typeof b === "string" ? b : b.text || "")).join("");
  }
  return "";
}

// A blank value for a JSON schema property, so the input box shows the fields to fill.
function blankFor(property) {
  if (property.default !== undefined && property.default !== null) return property.default;
  const type = Array.isArray(property.type) ? property.type[0] : property.type;
  return { string: "", integer: 0, number: 0, boolean: false, array: [], object: {} }[type] ?? null;
}

// --- graphs, nodes and threads -----------------------------------------------------------

async function loadAssistants() {
  assistants = await api("POST", "/assistants/search", { limit: 100 });
  $("assistant").replaceChildren(...assistants.map((a) => {
    const option = new Option(a.name === a.graph_id ? a.graph_id : `${a.name} (${a.graph_id})`,
                              a.assistant_id);
    option.dataset.graph = a.graph_id;
    return option;
  }));
  await selectAssistant();
}

async function selectAssistant() {
  const assistant = currentAssistant();
  if (!assistant) return;
  const load = ++assistantLoads;
  const id = encodeURIComponent(assistant.assistant_id);
  const [graph, schemas] = await Promise.all([
    api("GET", `/assistants/${id}/graph`),
    api("GET", `/assistants/${id}/schemas`),
  ]);
  if (load !== assistantLoads) return;
  graphNodes = graph.nodes.map((n) => n.id).filter((n) => !SPECIAL_NODES.has(n));
  const legend = $("nodes").querySelector("legend");
  $("nodes").replaceChildren(legend, ...graphNodes.map((name) => {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = name;
    box.checked = true;
    box.id = `node-${name}`;
    box.dataset.testid = `node-${name}`;
    const label = document.createElement("label");
    label.append(box, ` ${name}`);
    return label;
  }));
  const schema = schemas.input_schema || schemas.state_schema || {};
  const input = {};
  for (const [name, property] of Object.entries(schema.properties || {})) {
    input[name] = blankFor(property);
  }
  $("input").value = pretty(input);
  await loadThreads();
}

async function loadThreads(selected = $("thread").value) {
  const load = ++threadLoads;
  const threads = await api("POST", "/threads/search", { limit: 50, sort_by: "updated_at" });
  if (load !== threadLoads) return;
  const options = [new Option("new thread", "")];
  for (const t of threads) {
    const graph = (t.metadata && t.metadata.graph_id) || "not run";
    options.push(new Option(`${t.thread_id.slice(0, 8)}… ${graph} (${t.status})`, t.thread_id));
  }
  $("thread").replaceChildren(...options);
  $("thread").value = threads.some((t) => t.thread_id === selected) ? selected : "";
  await showThread();
}

async function newThread() {
  const thread = await api("POST", "/threads", {});
  await loadThreads(thread.thread_id);
  return thread.thread_id;
}

// The selected thread's state, interrupt and checkpoints (or nothing, for a new thread).
async function showThread() {
  const threadId = $("thread").value;
  $("interrupt").hidden = true;
  if (!threadId) {
    $("state").textContent = "";
    $("history").replaceChildren();
    return;
  }
  const id = encodeURIComponent(threadId);
  const [thread, history] = await Promise.all([
    api("GET", `/threads/${id}`),
    api("POST", `/threads/${id}/history`, { limit: 100 }),
  ]);
  $("state").textContent = pretty(thread.values);
  showInterrupts(thread.status === "interrupted" ? Object.values(thread.interrupts || {}).flat()
                                                 : []);
  $("history").replaceChildren(...history.map((c) => {
    const item = document.createElement("li");
    item.dataset.testid = "checkpoint";
    item.dataset.step = c.metadata.step;
    item.dataset.source = c.metadata.source;
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = `step ${c.metadata.step} · ${c.metadata.source} · next: ` +
      `${c.next.length ? c.next.join(", ") : "(end)"} · ${c.checkpoint.checkpoint_id}`;
    const values = document.createElement("pre");
    values.textContent = pretty(c.values);
    details.append(summary, values);
    item.append(details);
    return item;
  }));
}

// The pending interrupts: one answer box for one, a box each (answered by id) for several.
let pendingInterrupts = [];

function showInterrupts(interrupts) {
  pendingInterrupts = interrupts;
  $("interrupt").hidden = interrupts.length === 0;
  $("interrupt-value").textContent = interrupts.map((i) => pretty(i.value)).join("\n");
  const several = interrupts.length > 1;
  $("interrupt-value").hidden = several;
  $("resume-one").hidden = several;
  $("interrupt-answers").replaceChildren(...(several ? interrupts : []).map((i) => {
    const item = document.createElement("div");
    item.className = "answer";
    const question = document.createElement("pre");
    question.dataset.testid = `interrupt-value-${i.id}`;
    question.textContent = pretty(i.value);
    const box = document.createElement("textarea");
    box.rows = 2;
    box.spellcheck = false;
    box.dataset.testid = `resume-${i.id}`;
    box.dataset.interruptId = i.id;
    box.setAttribute("aria-label", `Answer to ${pretty(i.value)}`);
    item.append(question, box);
    return item;
  }));
}

// --- runs ----------------------------------------------------------------------------------

// The lane of a node, made on its first item.
function lane(node) {
  let section = document.querySelector(`.lane[data-node="${CSS.escape(node)}"]`);
  if (!section) {
    section = document.createElement("section");
    section.className = "lane";
    section.dataset.node = node;
    section.dataset.testid = `lane-${node}`;
    const title = document.createElement("h3");
    title.textContent = node;
    const tokens = document.createElement("pre");
    tokens.className = "tokens";
    tokens.dataset.testid = `tokens-${node}`;
    const updates = document.createElement("pre");
    updates.className = "updates";
    updates.dataset.testid = `updates-${node}`;
    section.append(title, tokens, updates);
    $("lanes").append(section);
  }
  return section;
}

function handleEvent(event, data, outcome) {
  const mode = event.split("|")[0]; // "updates|child:<task>" with stream_subgraphs
  if (mode === "metadata") {
    outcome.runId = data.run_id;
  } else if (mode === "messages") {
    const [chunk, metadata] = data;
    const text = chunkText(chunk.content);
    if (text) lane(metadata.langgraph_node).querySelector(".tokens").textContent += text;
  } else if (mode === "updates") {
    for (const [node, update] of Object.entries(data || {})) {
      if (node === "__interrupt__") continue; // shown from the thread once the run ends
      lane(node).querySelector(".updates").textContent += pretty(update) + "\n";
    }
  } else if (mode === "error") {
    outcome.error = `${data.error}: ${data.message}`;
  }
}

// Runs the selected graph on the selected thread (made first if "new thread"); `body` has
// the run's `input` or `command`.
async function run(body) {
  const assistant = currentAssistant();
  showError(null);
  setRunning(true);
  setStatus("running");
  $("interrupt").hidden = true;
  $("lanes").replaceChildren();
  const outcome = { runId: null, error: null };
  try {
    const threadId = $("thread").value || await newThread();
    const chosen = graphNodes.filter((n) => $(`node-${n}`).checked);
    const request = {
      assistant_id: assistant.assistant_id,
      stream_mode: ["messages-tuple", "updates"],
      stream_subgraphs: true,
      ...body,
    };
    if (chosen.length < graphNodes.length) {
      request.config = { configurable: { ferrograph_nodes: chosen } };
    }
    const path = `/threads/${encodeURIComponent(threadId)}/runs/stream`;
    const response = await fetch(path, {
      method: "POST",
      headers: { ...authHeaders(), "content-type": "application/json",
                 accept: "text/event-stream" },
      body: JSON.stringify(request),
    });
    if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
    for await (const { event, data } of readEvents(response)) handleEvent(event, data, outcome);
    // A run that stops at an interrupt is a "success" run on an "interrupted" thread
    let status = outcome.error ? "error" : "success";
    if (outcome.runId) {
      const runPath = `/threads/${encodeURIComponent(threadId)}/runs/${outcome.runId}`;
      status = (await api("GET", runPath)).status;
    }
    const thread = await api("GET", `/threads/${encodeURIComponent(threadId)}`);
    if (status === "success" && thread.status === "interrupted") status = "interrupted";
    if (outcome.error) showError(outcome.error);
    await loadThreads(threadId);
    setStatus(status);
  } catch (error) {
    showError(error);
    setStatus("error");
  } finally {
    setRunning(false);
  }
}

function send() {
  let input;
  try {
    input = JSON.parse($("input").value || "null");
  } catch (error) {
    showError(`The input is not JSON: ${error.message}`);
    return;
  }
  return run({ input });
}

function answer(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text; // plain text answers as a string
  }
}

// One pending interrupt takes the answer itself; several, a map of interrupt id to answer.
function resume() {
  if (pendingInterrupts.length <= 1) return run({ command: { resume: answer($("resume").value) } });
  const answers = {};
  for (const box of $("interrupt-answers").querySelectorAll("textarea")) {
    answers[box.dataset.interruptId] = answer(box.value);
  }
  return run({ command: { resume: answers } });
}

// Runs `action`, showing what it throws (event handlers have no one else to tell).
function guarded(action) {
  return () => Promise.resolve().then(action).catch(showError);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = sessionStorage.getItem("ferrograph-token") || "";
  $("token").addEventListener("change", guarded(() => {
    sessionStorage.setItem("ferrograph-token", $("token").value.trim());
    showError(null);
    return loadAssistants();
  }));
  $("assistant").addEventListener("change", guarded(selectAssistant));
  $("thread").addEventListener("change", guarded(showThread));
  $("new-thread").addEventListener("click", guarded(newThread));
  $("send").addEventListener("click", guarded(send));
  $("resume-send").addEventListener("click", guarded(resume));
  guarded(loadAssistants)().then(() => { document.body.dataset.ready = "true"; });
});
