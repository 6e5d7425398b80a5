// The Raft view: draws what the feed at ./raft/events says, read-only.
//
// Two feeds speak the same events (server-sent events, one JSON object each):
//   hello     {mode: "live" | "sim", title, about, scenarios: [{name, about}], current}
//   step      sim only: one recorded step {step, tick, text, rule, section, category, members, links, blocked, ...}
//   end       sim only: every step has arrived {violation}
//   state     live only: the cluster now {time, members, links}
//   timeline  live only: one event for the timeline {time, category, text}
// A member object: {id, status: up|down|removed|unreachable, role, term, vote, leader, first_index,
// last_index, commit, applied, snapshot_index, voters, learners, progress: {id: {match, next, state, inflight, active}}}.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

const view = {
  mode: "",
  steps: [],        // sim: every recorded step, in order
  position: -1,     // sim: the step on screen
  ended: false,
  violationStep: -1,
  timer: null,      // sim: the play timer
  timeline: [],     // live: recent timeline events
};

function text(value) {
  return value === undefined || value === null ? "" : String(value);
}

function el(tag, attrs, content) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (content !== undefined) node.textContent = text(content);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

// ---------------------------------------------------------------- drawing one cluster state

// Member IDs: small numbers in the simulator, hex strings (as etcd prints them) from a live cluster.
let names = new Map();

function nameOf(id) {
  return names.get(String(id)) || `n${id}`;
}

function roleOf(member) {
  return member.status === "up" ? member.role : member.status;
}

function positions(members) {
  const out = new Map();
  const n = members.length;
  members.forEach((m, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    out.set(String(m.id), {x: 210 + 135 * Math.cos(angle), y: 180 + 135 * Math.sin(angle)});
  });
  return out;
}

function drawGraph(state) {
  const members = state.members || [];
  const at = positions(members);
  const links = $("#links");
  const nodes = $("#nodes");
  links.replaceChildren();
  nodes.replaceChildren();
  // Cut links first, as dashed lines, so message arrows draw over them.
  for (const [a, b] of state.blocked || []) {
    const p = at.get(String(a)), q = at.get(String(b));
    if (p && q) links.append(svg("line", {x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: "cut-link"}));
  }
  for (const link of state.links || []) {
    const p = at.get(String(link.from)), q = at.get(String(link.to));
    if (!p || !q) continue;
    // Offset each direction sideways so a->b and b->a are two arrows, and stop short of the circles.
    const dx = q.x - p.x, dy = q.y - p.y, len = Math.hypot(dx, dy) || 1;
    const ox = (-dy / len) * 7, oy = (dx / len) * 7, trim = 36 / len;
    const x1 = p.x + dx * trim + ox, y1 = p.y + dy * trim + oy;
    const x2 = q.x - dx * trim + ox, y2 = q.y - dy * trim + oy;
    let fate = "ok";
    if (link.cut) fate = "cut";
    else if (link.dropped) fate = "dropped";
    else if (link.delayed || link.duplicated) fate = "delayed";
    const width = Math.min(1 + Math.log2(1 + (link.rate !== undefined ? link.rate : link.sent)), 7);
    const line = svg("line", {x1, y1, x2, y2, class: `msg fate-${fate}`, "stroke-width": width,
                             "marker-end": "url(#arrow)", "data-from": link.from, "data-to": link.to});
    const title = svg("title");
    title.textContent = describeLink(link);
    line.append(title);
    links.append(line);
    const label = svg("text", {x: (x1 + x2) / 2 + ox, y: (y1 + y2) / 2 + oy, class: "msg-label"});
    label.textContent = link.rate !== undefined ? `${link.rate.toFixed(1)}/s` : `${link.sent}`;
    links.append(label);
  }
  for (const m of members) {
    const p = at.get(String(m.id));
    const role = roleOf(m);
    const g = svg("g", {class: `node role-${role}`, "data-member": m.id, "data-role": role});
    g.append(svg("circle", {cx: p.x, cy: p.y, r: 32}));
    const name = svg("text", {x: p.x, y: p.y - 4, class: "node-name"});
    name.textContent = nameOf(m.id);
    const sub = svg("text", {x: p.x, y: p.y + 12, class: "node-sub"});
    sub.textContent = m.status === "up" ? `term ${text(m.term)}` : role;
    g.append(name, sub);
    nodes.append(g);
  }
}

function describeLink(link) {
  const types = Object.entries(link.types || {}).map(([t, n]) => `${t}×${n}`).join(", ");
  const fates = ["dropped", "cut", "delayed", "duplicated"].filter((f) => link[f]).map((f) => `${f} ${link[f]}`);
  const amount = link.rate !== undefined ? `${link.rate.toFixed(1)} msg/s` : `${link.sent} sent`;
  return `${nameOf(link.from)} → ${nameOf(link.to)}: ${amount}${types ? " (" + types + ")" : ""}${fates.length ? "; " + fates.join(", ") : ""}`;
}

function drawTables(state) {
  const body = $("#members tbody");
  body.replaceChildren();
  let leader = null;
  for (const m of state.members || []) {
    const role = roleOf(m);
    const row = el("tr", {class: `role-${role}`, "data-member": m.id, "data-role": role, "data-term": text(m.term),
                          "data-leader": text(m.leader), "data-commit": text(m.commit), "data-applied": text(m.applied),
                          "data-last": text(m.last_index)});
    const voters = (m.voters || []).map(nameOf).join(" ") +
      ((m.learners || []).length ? " | learners " + m.learners.map(nameOf).join(" ") : "");
    const cells = [nameOf(m.id), role, m.term, m.vote ? nameOf(m.vote) : "-", m.leader ? nameOf(m.leader) : "-",
                   m.first_index, m.last_index, m.commit, m.applied, m.snapshot_index, voters];
    for (const c of cells) row.append(el("td", {}, c));
    body.append(row);
    if (m.status === "up" && m.role === "leader" && (!leader || m.term > leader.term)) leader = m;
  }
  const progress = $("#progress tbody");
  progress.replaceChildren();
  $("#progress-leader").textContent = leader ? `(${nameOf(leader.id)}, term ${leader.term})` : "(no leader)";
  if (!leader) return;
  for (const [id, p] of Object.entries(leader.progress || {})) {
    const row = el("tr", {"data-member": id, "data-state": p.state, class: `progress-${p.state}`});
    for (const c of [`${nameOf(id)}${p.learner ? " (learner)" : ""}`, p.match, p.next, p.state, p.inflight,
                     p.active === undefined ? "" : (p.active ? "yes" : "no")]) row.append(el("td", {}, c));
    progress.append(row);
  }
}

function drawNetwork(state) {
  const parts = [];
  if ((state.blocked || []).length) {
    parts.push("cut: " + state.blocked.map(([a, b]) => `${nameOf(a)}→${nameOf(b)}`).join(" "));
  }
  const f = state.faults;
  if (f && (f.drop || f.duplicate || f.delay || f.reorder)) {
    parts.push(`faults: drop ${f.drop}, duplicate ${f.duplicate}, delay ${f.delay}${f.reorder ? ", reordering" : ""}`);
  }
  if (state.in_flight !== undefined) parts.push(`${state.in_flight} messages in flight`);
  $("#network").textContent = parts.join(" · ");
}

function drawState(state) {
  names = new Map((state.members || []).filter((m) => m.name).map((m) => [String(m.id), m.name]));
  drawGraph(state);
  drawTables(state);
  drawNetwork(state);
}

// ---------------------------------------------------------------- timeline

function laneShown(category) {
  const box = document.querySelector(`.lane[value="${category}"]`);
  return !box || box.checked;
}

function timelineItem(category, label, body, stepIndex) {
  const li = el("li", {class: `cat-${category}`, "data-category": category});
  if (stepIndex !== undefined) li.dataset.step = stepIndex;
  li.append(el("span", {class: "when"}, label), el("span", {class: "what"}, body));
  if (!laneShown(category)) li.hidden = true;
  return li;
}

function drawSimTimeline() {
  // Everything up to the current step, newest first, capped so long seeds stay fast.
  const list = $("#timeline");
  list.replaceChildren();
  let shown = 0;
  for (let i = view.position; i >= 0 && shown < 200; i--) {
    const s = view.steps[i];
    if (!laneShown(s.category)) continue;
    const li = timelineItem(s.category, `#${s.step} t=${s.tick}`, s.text, i);
    if (i === view.position) li.classList.add("current");
    list.append(li);
    shown++;
  }
}

function addLiveTimeline(event) {
  const list = $("#timeline");
  const when = new Date(event.time * 1000).toLocaleTimeString();
  // The member speaks in hex IDs, as etcd's logs do; show the names the page knows instead.
  let said = event.text;
  for (const [id, name] of names) said = said.split(id).join(name);
  list.prepend(timelineItem(event.category, when, said));
  while (list.children.length > 300) list.lastChild.remove();
}

// ---------------------------------------------------------------- the step-through

function show(index) {
  if (!view.steps.length) return;
  const limit = view.violationStep >= 0 ? view.violationStep : view.steps.length - 1;
  view.position = Math.max(0, Math.min(index, limit));
  const s = view.steps[view.position];
  document.body.dataset.step = view.position;
  drawState(s);
  $("#narration").textContent = `step ${s.step} · tick ${s.tick} · ${s.text}`;
  $("#narration").className = `cat-${s.category}`;
  $("#rule").textContent = s.rule ? `${s.rule} — ${s.section}` : (s.category === "note" ? "the scenario's own comment" : "");
  $("#rule").dataset.section = text(s.section);
  $("#scrub").max = String(view.steps.length - 1);
  $("#scrub").value = String(view.position);
  $("#position").textContent = `${view.position + 1} / ${view.steps.length}${view.ended ? "" : "…"}`;
  if (s.violation) {
    $("#narration").textContent = `VIOLATION at step ${s.step}: ${s.violation}`;
    $("#narration").className = "cat-violation";
    stop();
  }
  drawSimTimeline();
}

function startStep() {
  const wanted = new URLSearchParams(window.location.search).get("step");
  return wanted === null ? 0 : Number(wanted);
}

function stop() {
  if (view.timer !== null) clearInterval(view.timer);
  view.timer = null;
  $("#play").textContent = "play";
}

function play() {
  if (view.timer !== null) { stop(); return; }
  $("#play").textContent = "pause";
  view.timer = setInterval(() => {
    if (view.position >= view.steps.length - 1) { if (view.ended) stop(); return; }
    show(view.position + 1);
  }, Number($("#speed").value));
}

function wireControls() {
  $("#first").onclick = () => { stop(); show(0); };
  $("#back").onclick = () => { stop(); show(view.position - 1); };
  $("#forward").onclick = () => { stop(); show(view.position + 1); };
  $("#last").onclick = () => { stop(); show(view.steps.length - 1); };
  $("#play").onclick = play;
  $("#speed").onchange = () => { if (view.timer !== null) { stop(); play(); } };
  $("#scrub").oninput = () => { stop(); show(Number($("#scrub").value)); };
  $("#timeline").onclick = (e) => {
    const li = e.target.closest("li[data-step]");
    if (li) { stop(); show(Number(li.dataset.step)); }
  };
  document.addEventListener("keydown", (e) => {
    if (view.mode !== "sim" || e.target.tagName === "SELECT" || e.target.tagName === "INPUT") return;
    if (e.key === "ArrowRight") $("#forward").click();
    else if (e.key === "ArrowLeft") $("#back").click();
    else if (e.key === " ") { e.preventDefault(); play(); }
  });
  for (const box of document.querySelectorAll(".lane")) {
    box.onchange = () => {
      if (view.mode === "sim") drawSimTimeline();
      else for (const li of $("#timeline").children) li.hidden = !laneShown(li.dataset.category);
    };
  }
}

// ---------------------------------------------------------------- the feed

function onHello(hello) {
  view.mode = hello.mode;
  document.body.dataset.mode = hello.mode;
  $("#title").textContent = hello.title ? `— ${hello.title}` : "";
  $("#about").textContent = text(hello.about);
  const links = $("#scenario-links");
  links.replaceChildren();
  for (const s of hello.scenarios || []) {
    const a = el("a", {href: `?scenario=${encodeURIComponent(s.name)}`, title: s.about}, s.name);
    if (s.name === hello.current) a.classList.add("current");
    links.append(a, document.createTextNode(" "));
  }
  $("#scenarios").hidden = !(hello.scenarios || []).length;
  $("#controls").hidden = hello.mode !== "sim";
}

function connect() {
  const source = new EventSource("raft/events" + window.location.search);
  source.onopen = () => { document.body.dataset.connected = "true"; };
  source.onerror = () => {
    document.body.dataset.connected = "false";
    if (view.mode === "sim" && view.ended) source.close();  // a finished recording needs nothing more
  };
  source.addEventListener("hello", (e) => {
    // A reconnect (the member restarted) starts a fresh recording or a fresh live view.
    view.steps = []; view.position = -1; view.ended = false; view.violationStep = -1;
    onHello(JSON.parse(e.data));
  });
  source.addEventListener("step", (e) => {
    const s = JSON.parse(e.data);
    view.steps.push(s);
    if (s.violation && view.violationStep < 0) view.violationStep = view.steps.length - 1;
    if (view.position < 0) show(0);
    else if (view.steps.length - 1 === startStep()) show(startStep());
    else $("#position").textContent = `${view.position + 1} / ${view.steps.length}`;
  });
  source.addEventListener("end", (e) => {
    view.ended = true;
    document.body.dataset.ended = "true";
    const end = JSON.parse(e.data);
    if (end.violation) $("#about").textContent += ` The run broke a safety property: ${end.violation}`;
    show(view.position);
    source.close();
  });
  source.addEventListener("state", (e) => {
    const state = JSON.parse(e.data);
    drawState(state);
    const up = (state.members || []).filter((m) => m.status === "up").length;
    $("#narration").textContent = `${up} of ${(state.members || []).length} members reachable · updated ${new Date(state.time * 1000).toLocaleTimeString()}`;
    document.body.dataset.updated = String(state.time);
  });
  source.addEventListener("timeline", (e) => addLiveTimeline(JSON.parse(e.data)));
}

wireControls();
connect();
