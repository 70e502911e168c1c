// Godwit's live dashboard. Everything it shows comes from the native API: the queue
// table from the stats stream (GET /v1/stats/events, an EventSource: no polling), the
// tail from peeks fetched when the stream shows the selected queue changed. Every name
// and body goes into the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const api = (queue, rest) => "/v1/queues/" + encodeURIComponent(queue) + (rest || "");

const rows = new Map(); // queue name -> {tr, cells}
let previous = null; // the last stats event, for rates
let selected = null; // the tailed queue's name
let tailSeen = null; // "total_pushed:ready" of the selected queue at its last peek
let tailBusy = false;
let tailAgain = false;

const COLUMNS = [
  ["ready", "ready"],
  ["in-flight", "in flight"],
  ["delayed", "delayed"],
  ["push-rate", "push/s"],
  ["take-rate", "take/s"],
  ["live", "live"],
  ["policy col-policy", "policy"],
];

function rate(now, before, field, seconds) {
  if (!before || seconds <= 0) return "–";
  const delta = now[field] - before[field];
  return delta < 0 ? "–" : (delta / seconds).toFixed(1);
}

async function call(method, url, body, json) {
  const init = { method, body };
  if (json) init.headers = { "Content-Type": "application/json" };
  const resp = await fetch(url, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const why = data && data.error ? data.error.message : resp.status + " " + resp.statusText;
    throw new Error(why);
  }
  return data;
}

function showResult(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function bodyText(m) {
  return m.body !== undefined ? m.body : "(binary, base64) " + m.body_base64;
}

// --- the queue table -------------------------------------------------------------

function newRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.queue = name;
  const first = document.createElement("td");
  first.className = "name";
  const pick = document.createElement("button");
  pick.type = "button";
  pick.className = "name";
  pick.textContent = name;
  pick.title = "Tail this queue";
  pick.addEventListener("click", () => select(name));
  first.appendChild(pick);
  tr.appendChild(first);
  const cells = {};
  for (const [cls, label] of COLUMNS) {
    const td = document.createElement("td");
    td.className = cls;
    td.dataset.label = label;
    tr.appendChild(td);
    cells[cls.split(" ")[0]] = td;
  }
  const last = document.createElement("td");
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "pause";
  toggle.addEventListener("click", () => setPaused(name, toggle.dataset.paused !== "true"));
  last.appendChild(toggle);
  tr.appendChild(last);
  cells.toggle = toggle;
  return { tr, cells };
}

function showPaused(row, paused) {
  row.cells.live.textContent = paused ? "paused" : "live";
  row.cells.live.classList.toggle("paused", paused);
  row.cells.toggle.textContent = paused ? "Resume" : "Pause";
  row.cells.toggle.dataset.paused = String(paused);
}

function render(event) {
  const before = previous;
  previous = event;
  const seconds = before ? (event.at_ms - before.at_ms) / 1000 : 0;
  const old = new Map(before ? before.queues.map((q) => [q.name, q]) : []);
  const t = event.totals;
  $("t-queues").textContent = t.queues;
  $("t-ready").textContent = t.ready;
  $("t-in-flight").textContent = t.in_flight;
  $("t-push-rate").textContent = rate(t, before && before.totals, "total_pushed", seconds);
  $("t-take-rate").textContent = rate(t, before && before.totals, "total_consumed", seconds);

  const tbody = document.querySelector("#queues tbody");
  const seen = new Set();
  let hasPolicy = false;
  event.queues.forEach((q, i) => {
    seen.add(q.name);
    let row = rows.get(q.name);
    if (!row) {
      row = newRow(q.name);
      rows.set(q.name, row);
    }
    if (tbody.children[i] !== row.tr) {
      tbody.insertBefore(row.tr, tbody.children[i] || null); // the stream's order: by name
    }
    const c = row.cells;
    c.ready.textContent = q.ready;
    c["in-flight"].textContent = q.in_flight;
    c.delayed.textContent = q.delayed;
    c["push-rate"].textContent = rate(q, old.get(q.name), "total_pushed", seconds);
    c["take-rate"].textContent = rate(q, old.get(q.name), "total_consumed", seconds);
    showPaused(row, q.live_paused);
    if (q.live_policy !== undefined) {
      hasPolicy = true;
      c.policy.textContent = q.live_policy;
    }
    row.tr.classList.toggle("selected", q.name === selected);
    if (q.name === selected) {
      const now = q.total_pushed + ":" + q.ready;
      if (now !== tailSeen) refreshTail();
    }
  });
  for (const [name, row] of rows) {
    if (!seen.has(name)) {
      row.tr.remove();
      rows.delete(name);
    }
  }
  $("queues").classList.toggle("has-policy", hasPolicy);
  $("no-queues").hidden = event.queues.length > 0;

  const list = $("queue-names");
  list.replaceChildren(...event.queues.map((q) => {
    const option = document.createElement("option");
    option.value = q.name;
    return option;
  }));
}

function connect() {
  const conn = $("conn");
  const source = new EventSource("/v1/stats/events");
  source.addEventListener("open", () => {
    conn.textContent = "live";
    conn.className = "conn live";
  });
  source.addEventListener("error", () => {
    // EventSource reconnects by itself.
    conn.textContent = "reconnecting…";
    conn.className = "conn down";
  });
  source.addEventListener("stats", (e) => render(JSON.parse(e.data)));
}

// --- actions ---------------------------------------------------------------------

async function setPaused(name, paused) {
  const row = rows.get(name);
  try {
    const settings = await call("PUT", api(name), JSON.stringify({ live_paused: paused }), true);
    if (row) showPaused(row, settings.live_paused);
  } catch (err) {
    showResult($("push-result"), "pause " + name + ": " + err.message, true);
  }
}

function queueField() {
  const name = $("push-queue").value;
  if (!name) showResult($("push-result"), "name a queue first", true);
  return name;
}

async function push(e) {
  e.preventDefault();
  const name = queueField();
  if (!name) return;
  try {
    const reply = await call("POST", api(name, "/messages"), $("push-body").value);
    const what = reply.duplicate ? "duplicate of id " : "pushed id ";
    showResult($("push-result"), what + reply.id + " to " + name + " (length " + reply.length + ")");
    if (!selected) select(name);
  } catch (err) {
    showResult($("push-result"), "push: " + err.message, true);
  }
}

async function take() {
  const name = queueField();
  if (!name) return;
  try {
    const reply = await call("POST", api(name, "/take"));
    const m = reply.messages[0];
    showResult($("push-result"), m ? "took id " + m.id + " from " + name : name + " is empty");
    $("take-result").textContent = m ? bodyText(m) : "";
  } catch (err) {
    showResult($("push-result"), "take: " + err.message, true);
  }
}

// --- the tail --------------------------------------------------------------------

function select(name) {
  selected = name;
  tailSeen = null;
  $("tail-queue").textContent = name;
  $("tail-queue").classList.remove("muted");
  $("push-queue").value = name;
  for (const [n, row] of rows) row.tr.classList.toggle("selected", n === name);
  refreshTail();
}

async function refreshTail() {
  if (tailBusy) {
    tailAgain = true;
    return;
  }
  tailBusy = true;
  const name = selected;
  const q = previous && previous.queues.find((x) => x.name === name);
  tailSeen = q ? q.total_pushed + ":" + q.ready : null;
  try {
    const reply = await call("GET", api(name, "/peek?end=tail&max=20"));
    if (name === selected) {
      const items = reply.messages.map((m) => {
        const li = document.createElement("li");
        const id = document.createElement("span");
        id.className = "id";
        id.textContent = "#" + m.id;
        const body = document.createElement("span");
        body.className = "body";
        body.textContent = bodyText(m);
        li.append(id, body);
        return li;
      });
      if (items.length === 0) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "(no ready messages)";
        items.push(li);
      }
      $("tail").replaceChildren(...items);
    }
  } catch (err) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = err.message;
    $("tail").replaceChildren(li);
  } finally {
    tailBusy = false;
    if (tailAgain) {
      tailAgain = false;
      refreshTail();
    }
  }
}

$("push-form").addEventListener("submit", push);
$("take-btn").addEventListener("click", take);
connect();
