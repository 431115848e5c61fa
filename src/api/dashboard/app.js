// The smsq dashboard: reads /v1/admin/… every two seconds and draws it. Everything shown
// comes as text (textContent), never as HTML, and nothing it receives holds a code or a
// full mobile number.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = null;

async function api(path, options = {}) {
  const headers = { "accept": "application/json", ...(options.headers || {}) };
  if (options.method === "POST") {
    headers["content-type"] = "application/json";
    if (csrf) headers["x-csrf-token"] = csrf;
  }
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function text(id, value) {
  $(id).textContent = value;
}

function secs(ms) {
  return ms == null ? "–" : (ms / 1000).toFixed(1) + " s";
}

function time(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function row(cells, onclick) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell == null ? "" : String(cell);
    tr.appendChild(td);
  }
  if (onclick) {
    tr.className = "clickable";
    tr.addEventListener("click", onclick);
  }
  return tr;
}

function statusCell(status) {
  const span = document.createElement("span");
  span.className = "status-" + status;
  span.textContent = status;
  return span;
}

function drawStatus({ snapshot: s, series }) {
  const verdict = $("verdict");
  verdict.textContent = s.verdict.status;
  verdict.className = "badge " + s.verdict.status;
  text("reasons", s.verdict.reasons.join("; "));
  text("backlog", s.stream.backlog);
  text("lag", s.stream.lag == null ? "" : `${s.stream.lag} not yet handed out`);
  text("pending", s.stream.pending);
  text("oldest", s.stream.oldest_pending_age_ms == null ? "" : `oldest ${secs(s.stream.oldest_pending_age_ms)}`);
  const live = s.consumers.filter((c) => c.alive).length;
  text("workers", `${live} live`);
  text("workers-dead", `${s.consumers.length - live} dead`);
  text("retries", s.retries.waiting);
  const due = s.retries.next_due_in_ms;
  text("next-retry", due == null ? "" : due < 0 ? `overdue ${secs(-due)}` : `next in ${secs(due)}`);
  text("dead-count", s.dead_letters);
  const halted = s.halt;
  text("halt", halted ? "PAUSED" : "on");
  text("halt-detail", halted ? `by ${halted.by}: ${halted.reason}` : (s.audit || []).slice(0, 1).map((a) => `last: ${a.action} by ${a.by}`).join(""));
  $("halt-toggle").textContent = halted ? "Resume sending" : "Pause sending";
  $("halt-toggle").dataset.halted = halted ? "1" : "";
  const guard = s.guard || { budgets: [], blocked: [] };
  const hourly = guard.budgets.find((b) => b.window === "hourly" && b.purpose == null);
  text("guard", guard.blocked.length > 0 ? `${guard.blocked.length} prefix(es) held` : "quiet");
  text("guard-detail", [
    hourly ? `this hour ${hourly.used}${hourly.limit == null ? "" : ` of ${hourly.limit}`} codes` : "",
    ...guard.blocked.map((b) => `${b.prefix}: ${b.action} (${b.reason})`),
  ].filter(Boolean).join("; "));
  const hooks = s.webhooks || [];
  text("webhooks", hooks.length === 0 ? "off" : `${hooks.reduce((n, h) => n + h.backlog, 0)} waiting`);
  text("webhooks-detail", hooks.map((h) => `${h.endpoint}: ${h.delivered} delivered, ${h.dead} dead`).join("; "));
  const l = s.limiter;
  text("limit", l.rate_per_sec == null ? "–" : `${l.rate_per_sec}/s`);
  text("pause", l.paused_until_ms ? `PAUSED (${l.pause_reason}) until ${time(l.paused_until_ms)}` : `burst ${l.burst ?? "–"}, wait ${l.wait_ms} ms`);
  const t = s.throughput;
  text("rate", `${t.sent_per_sec_1m}/s`);
  text("rate-hour", `${t.sent_per_sec_1h}/s over 1 h`);
  text("delivery", t.delivery_rate_1h == null ? "–" : `${Math.round(t.delivery_rate_1h * 100)} %`);
  text("delivery-counts", `${t.last_hour.delivered || 0} delivered, ${t.last_hour.undelivered || 0} undelivered (1 h)`);
  drawProviders(s.providers || []);
  drawChart(series);
}

function drawProviders(accounts) {
  $("providers").querySelector("tbody").replaceChildren(...accounts.map((a) => {
    const button = document.createElement("button");
    button.textContent = a.disabled ? "Enable" : "Disable";
    button.className = a.disabled ? "" : "danger";
    button.addEventListener("click", () => switchProvider(a.name, a.disabled));
    const circuit = a.disabled ? "DISABLED"
      : a.open_until_ms ? `OPEN until ${time(a.open_until_ms)} (${a.reason})`
      : a.circuit === "half-open" ? `probing (${a.reason})` : "closed";
    const cell = document.createElement("span");
    cell.className = a.disabled || a.open_until_ms ? "badge down" : a.circuit === "half-open" ? "badge degraded" : "badge ok";
    cell.textContent = circuit;
    return row([a.name, a.kind, `${a.rate_per_sec}/s`, a.route, a.recent_errors, cell, button]);
  }));
}

async function switchProvider(name, enable) {
  const question = enable ? `Send through ${name} again?` : `Stop every worker sending through ${name}? Jobs move to the route's other accounts.`;
  if (!confirm(question)) return;
  await api(`/v1/admin/providers/${encodeURIComponent(name)}`, { method: "POST", body: JSON.stringify({ enabled: enable }) });
  await refresh();
}

function drawChart(series) {
  const svg = $("chart");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const max = Math.max(1, ...series.map((m) => Math.max(m.sent, m.delivered, m.failed + m.undelivered)));
  const step = 600 / Math.max(1, series.length - 1);
  const line = (values, color) => {
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(135 - (v / max) * 125).toFixed(1)}`);
    const poly = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    poly.setAttribute("points", points.join(" "));
    poly.setAttribute("fill", "none");
    poly.setAttribute("stroke", color);
    poly.setAttribute("stroke-width", "2");
    svg.appendChild(poly);
  };
  line(series.map((m) => m.sent), "#3461c1");
  line(series.map((m) => m.delivered), "#1f8f4e");
  line(series.map((m) => m.failed + m.undelivered), "#c62828");
}

// The page of dead letters shown: the cursor it was asked with, and the next page's.
const deadPages = { after: null, next: null, before: [] };

async function drawDead() {
  const query = deadPages.after ? `?after=${encodeURIComponent(deadPages.after)}` : "";
  const { total, dead_letters, next } = await api(`/v1/admin/dead${query}`);
  deadPages.next = next;
  $("dead-next").disabled = !next;
  $("dead-prev").disabled = deadPages.before.length === 0;
  const body = $("dead").querySelector("tbody");
  body.replaceChildren(...dead_letters.map((d) => {
    const button = document.createElement("button");
    button.textContent = "Replay";
    button.className = "replay";
    button.dataset.id = d.id;
    button.addEventListener("click", () => replay([d.id]));
    return row([d.id, d.job_id || "(not a job)", d.mobile || "", d.attempts, d.error, button]);
  }));
  $("purge").disabled = total === 0;
}

async function deadPage(forward) {
  if (forward && deadPages.next) {
    deadPages.before.push(deadPages.after);
    deadPages.after = deadPages.next;
  } else if (!forward && deadPages.before.length > 0) {
    deadPages.after = deadPages.before.pop();
  }
  await drawDead();
}

async function replay(ids) {
  const done = await api("/v1/admin/dead/replay", { method: "POST", body: JSON.stringify({ ids }) });
  text("dead-report", `${done.replayed} replayed, ${done.refused} refused, ${done.not_found} not found`);
  await Promise.all([drawDead(), refresh()]);
}

async function toggleHalt() {
  const halted = $("halt-toggle").dataset.halted === "1";
  if (halted) {
    if (!confirm("Let every worker send again?")) return;
    await api("/v1/admin/resume", { method: "POST", body: "{}" });
  } else {
    const reason = prompt("Pause every worker's sending. Why?", "paused from the dashboard");
    if (reason === null) return;
    await api("/v1/admin/pause", { method: "POST", body: JSON.stringify({ reason }) });
  }
  await refresh();
}

async function purge() {
  if (!confirm("Delete every dead letter?")) return;
  const done = await api("/v1/admin/dead/purge", { method: "POST", body: "{}" });
  text("dead-report", `purged ${done.purged} dead letter(s)`);
  await drawDead();
}

async function showJob(id) {
  const { job, history } = await api(`/v1/admin/jobs/${encodeURIComponent(id)}`);
  $("job").hidden = false;
  text("job-id", job.id);
  const delivery = job.deliver_code ? `, carrier ${job.deliver_code}` : "";
  text("job-summary", `${job.kind} to ${job.mobile}: ${job.status} after ${job.attempts} attempt(s)${delivery}`);
  $("history").querySelector("tbody").replaceChildren(
    ...history.map((e) => row([time(e.ts), statusCell(e.status), e.attempt, e.provider || "", e.error])));
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  $("search-error").hidden = true;
  $("found").hidden = true;
  $("job").hidden = true;
  try {
    if (/^[0-9a-f]{32}$/.test(query)) {
      await showJob(query);
      return;
    }
    const { jobs } = await api(`/v1/admin/jobs?mobile=${encodeURIComponent(query)}`);
    $("found").hidden = false;
    $("found").querySelector("tbody").replaceChildren(...jobs.map((j) =>
      row([j.id, j.mobile, statusCell(j.status), j.attempts, j.created_at], () => showJob(j.id))));
    if (jobs.length === 0) throw new Error("no jobs to that number");
  } catch (e) {
    $("search-error").hidden = false;
    text("search-error", e.message);
  }
}

async function refresh() {
  try {
    drawStatus(await api("/v1/admin/status"));
  } catch (e) {
    if (e.status === 401) location.reload();
    $("verdict").textContent = "unreachable";
    $("verdict").className = "badge down";
  }
}

async function start() {
  try {
    ({ csrf } = await api("/v1/admin/session"));
  } catch (e) {
    $("login").hidden = false;
    $("login-failed").hidden = !location.search.includes("login=failed");
    return;
  }
  $("app").hidden = false;
  $("logout").hidden = false;
  $("search").addEventListener("submit", search);
  $("purge").addEventListener("click", purge);
  $("halt-toggle").addEventListener("click", toggleHalt);
  $("dead-next").addEventListener("click", () => deadPage(true));
  $("dead-prev").addEventListener("click", () => deadPage(false));
  await Promise.all([refresh(), drawDead()]);
  setInterval(refresh, 2000);
  setInterval(drawDead, 5000);
}

start();
