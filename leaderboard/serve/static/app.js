// The leaderboard page: live standings over Server-Sent Events, player search, archived
// seasons, sign-in and score submission. Plain JavaScript, no build step, no network but the
// service itself.
"use strict";

const ROOT = document.body.dataset.root;
const REGIONS = document.body.dataset.regions.split(",");
const LIMIT = 10;
const $ = (id) => document.getElementById(id);

const state = {
  boards: {},        // id -> board definition (GET /boards)
  source: null,      // the open EventSource, when showing the live season
  ranks: new Map(),  // user_id -> rank in the table shown before the current one
  season: null,      // the live season's number and end (GET /boards/{board})
  total: 0,
  token: sessionStorage.getItem("lb-token"),
  user: sessionStorage.getItem("lb-user"),
};

async function api(path, options = {}) {
  const response = await fetch(ROOT + path, options);
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const error = new Error((body && body.detail) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function option(select, value, text) {
  const item = document.createElement("option");
  item.value = value;
  item.textContent = text;
  select.append(item);
}

const board = () => $("board").value;
const region = () => $("region").value;
const archived = () => $("season").value !== "live";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function movement(entry) {
  if (state.ranks.size === 0) return ["", "", ""];
  const before = state.ranks.get(entry.user_id);
  if (before === undefined) return ["new", "★", "new in the top"];
  if (entry.rank < before) return ["up", "▲", `up ${before - entry.rank}`];
  if (entry.rank > before) return ["down", "▼", `down ${entry.rank - before}`];
  return ["", "", ""];
}

function renderTop(top) {
  const body = $("top").tBodies[0];
  body.replaceChildren();
  for (const entry of top.entries) {
    const row = document.createElement("tr");
    const [kind, mark, text] = movement(entry);
    row.dataset.user = entry.user_id;
    row.dataset.move = kind;
    if (kind) row.className = `moved-${kind}`;
    cell(row, entry.rank, "rank");
    cell(row, entry.name, "name").title = entry.user_id;
    cell(row, entry.region);
    cell(row, entry.score.toLocaleString(), "score");
    const moved = cell(row, mark, "move");
    if (text) moved.setAttribute("aria-label", text);
    body.append(row);
  }
  if (top.entries.length === 0) {
    const row = document.createElement("tr");
    cell(row, "No scores yet this season.").colSpan = 5;
    body.append(row);
  }
  state.ranks = new Map(top.entries.map((e) => [e.user_id, e.rank]));
  state.total = top.total;
  $("total").textContent = `${top.total.toLocaleString()} players on ${top.region}`;
}

function countdown() {
  const season = state.season;
  if (!season || archived()) return;
  if (!season.ends_at) {
    $("countdown").textContent = "(never resets)";
    return;
  }
  let left = Math.max(0, Math.floor((Date.parse(season.ends_at) - Date.now()) / 1000));
  const days = Math.floor(left / 86400);
  left %= 86400;
  const pad = (n) => String(n).padStart(2, "0");
  const clock = `${pad(Math.floor(left / 3600))}:${pad(Math.floor(left / 60) % 60)}:${pad(left % 60)}`;
  $("countdown").textContent = `ends in ${days ? days + "d " : ""}${clock}`;
}

async function loadSeason() {
  const info = await api(`/boards/${board()}`);
  state.season = info.season;
  $("season-name").textContent = info.season ? `Season ${info.season.number}` : "Not started";
  countdown();
}

async function loadSeasons() {
  const select = $("season");
  select.replaceChildren();
  option(select, "live", "Live");
  try {
    const { seasons } = await api(`/boards/${board()}/seasons`);
    for (const s of seasons) {
      if (s.ended_at) option(select, String(s.number), `Season ${s.number} (ended ${s.ended_at.slice(0, 16).replace("T", " ")})`);
    }
  } catch (error) {
    // a board without archives (or a service without the endpoint): live only
  }
}

function stopLive() {
  if (state.source) state.source.close();
  state.source = null;
}

function startLive() {
  stopLive();
  state.ranks = new Map();
  const query = new URLSearchParams({ region: region(), limit: LIMIT });
  const source = new EventSource(`${ROOT}/boards/${board()}/live?${query}`);
  state.source = source;
  $("status").textContent = "connecting…";
  source.addEventListener("view", (event) => {
    const view = JSON.parse(event.data);
    $("status").textContent = "live";
    if (state.season && view.top.season !== state.season.number) {
      loadSeason();  // a rollover: the new season, and the one that ended among the archives
      loadSeasons();
    }
    renderTop(view.top);
  });
  source.addEventListener("problem", (event) => {
    $("status").textContent = JSON.parse(event.data).detail;
  });
  source.addEventListener("gone", () => {
    stopLive();
    $("status").textContent = "this board was deleted";
  });
  source.onerror = () => {
    $("status").textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…";
  };
}

async function showArchive() {
  stopLive();
  state.ranks = new Map();
  const k = $("season").value;
  const query = new URLSearchParams({ region: region(), limit: LIMIT, season: k });
  renderTop(await api(`/boards/${board()}/top?${query}`));
  $("season-name").textContent = `Season ${k}`;
  $("countdown").textContent = "(final standings)";
  $("status").textContent = "archived";
}

async function show() {
  try {
    if (archived()) await showArchive();
    else { await loadSeason(); startLive(); }
  } catch (error) {
    $("status").textContent = error.message;
  }
}

async function selectBoard() {
  const b = state.boards[board()];
  $("value-label").textContent = b && b.operator === "incr" ? "Points to add" : "Score";
  await loadSeasons();
  await show();
}

function describe(found, rank) {
  // rank: GET /boards/{b}/rank/{id}, with total, percentile and gap_to_next where the service
  // gives them; otherwise worked out here from the rank, the total and the entry above
  const me = found.self;
  const total = rank.total || 0;
  const above = found.around.filter((e) => e.rank === me.rank - 1)[0];
  const percentile = rank.percentile ?? (total ? ((total - me.rank) / total) * 100 : 0);
  const gap = rank.gap_to_next ?? (above ? Math.abs(above.score - me.score) + 1 : null);
  const lines = [
    `Rank ${me.rank} of ${total.toLocaleString()}: ahead of ${Number(percentile).toFixed(1)}% of players`,
    above ? `${gap.toLocaleString()} to pass rank ${above.rank} (${above.name})` : "Leading",
  ];
  const out = $("found");
  out.replaceChildren();
  const head = document.createElement("p");
  head.className = "found-name";
  head.textContent = `${me.name}: ${me.score.toLocaleString()}`;
  out.append(head);
  for (const text of lines) {
    const p = document.createElement("p");
    p.textContent = text;
    out.append(p);
  }
  const list = document.createElement("ol");
  list.setAttribute("aria-label", "Players around");
  list.className = "around";
  for (const e of [...found.around, me].sort((a, b) => a.rank - b.rank)) {
    const item = document.createElement("li");
    item.value = e.rank;
    item.textContent = `${e.name}: ${e.score.toLocaleString()}`;
    if (e.user_id === me.user_id) item.className = "me";
    item.dataset.rank = e.rank;
    list.append(item);
  }
  out.append(list);
}

async function search(event) {
  event.preventDefault();
  const id = $("search-id").value.trim();
  const query = new URLSearchParams({ region: region(), range: 2 });
  const rankQuery = new URLSearchParams({ region: region() });
  if (archived()) {
    query.set("season", $("season").value);
    rankQuery.set("season", $("season").value);
  }
  try {
    const path = `/boards/${board()}`;
    const [found, rank] = await Promise.all([
      api(`${path}/around/${encodeURIComponent(id)}?${query}`),
      api(`${path}/rank/${encodeURIComponent(id)}?${rankQuery}`),
    ]);
    describe(found, rank);
  } catch (error) {
    $("found").textContent = error.status === 404 ? `${id} has no score on this board` : error.message;
  }
}

function signedIn(token, user) {
  state.token = token;
  state.user = user;
  if (token) {
    sessionStorage.setItem("lb-token", token);
    sessionStorage.setItem("lb-user", user);
  } else {
    sessionStorage.removeItem("lb-token");
    sessionStorage.removeItem("lb-user");
  }
  $("signin").hidden = Boolean(token);
  $("submit").hidden = !token;
  $("who").textContent = token ? `Signed in as ${user}` : "";
}

async function account(path, body) {
  try {
    const answer = await api(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    signedIn(answer.token, body.user_id);
    $("play-result").textContent = "";
  } catch (error) {
    $("play-result").textContent = error.message;
  }
}

function login(event) {
  event.preventDefault();
  account("/auth/login", { user_id: $("user").value.trim(), password: $("password").value });
}

function register() {
  if (!$("signin").reportValidity()) return;
  const user = $("user").value.trim();
  const home = region() === "GLOBAL" ? REGIONS.filter((r) => r !== "GLOBAL")[0] : region();
  account("/auth/register", { user_id: user, name: user, region: home, password: $("password").value });
}

async function submitScore(event) {
  event.preventDefault();
  const value = Number($("value").value);
  const b = state.boards[board()];
  const body = b && b.operator === "incr" ? { delta: value } : { score: value };
  try {
    const entry = await api(`/boards/${board()}/scores`, {
      method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
    });
    const rank = entry.rank ? `rank ${entry.rank}` : "saved";
    const season = (entry.season ? ` (season ${entry.season})` : "")
      + (entry.improved === false ? "; your best stands" : "");
    $("play-result").textContent = `Score ${entry.score.toLocaleString()}: ${rank}${season}`;
  } catch (error) {
    if (error.status === 401) signedIn(null, null);
    $("play-result").textContent = error.message;
  }
}

async function init() {
  const params = new URLSearchParams(location.search);
  for (const r of REGIONS) option($("region"), r, r === "GLOBAL" ? "Global" : r);
  const { boards } = await api("/boards");
  for (const b of boards) {
    state.boards[b.id] = b;
    option($("board"), b.id, b.title);
  }
  if (params.get("board") in state.boards) $("board").value = params.get("board");
  if (REGIONS.includes(params.get("region"))) $("region").value = params.get("region");
  $("board").addEventListener("change", selectBoard);
  $("region").addEventListener("change", show);
  $("season").addEventListener("change", show);
  $("search").addEventListener("submit", search);
  $("signin").addEventListener("submit", login);
  $("register").addEventListener("click", register);
  $("submit").addEventListener("submit", submitScore);
  $("signout").addEventListener("click", () => signedIn(null, null));
  signedIn(state.token, state.user);
  setInterval(countdown, 1000);
  await selectBoard();
}

init().catch((error) => { $("status").textContent = error.message; });
