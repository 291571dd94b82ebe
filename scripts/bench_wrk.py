"""wrk runs for scripts/bench.py: one run's rate, latencies, errors, slowest request and second."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass

NAN = float("nan")

# request scripts shared by scripts/bench.py and scripts/capacity.py (users are bench-NNNNNN)
WRK_WRITE = """
local tokens = {%s}
local i = 0
request = function()
  i = i + 1
  local body = '{"score":' .. math.random(0, 1000000) .. '}'
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[(i %% #tokens) + 1]}
  return wrk.format("POST", "%s/score/update", headers, body)
end
"""

WRK_PATHS = """
local n = %d
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", string.format("%s", i %% n))
end
"""

WRK_BATCH = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local n = %d
local parts = {}
for i = 0, 999 do
  parts[#parts + 1] = string.format('{"user_id":"bench-%%06d","score":%%d}', i %% n, i)
end
wrk.body = '{"items":[' .. table.concat(parts, ",") .. ']}'
"""

# Appended to every wrk script: responses counted per second of the run (monotonic clock through
# LuaJIT's ffi), printed with the maximum latency when the run is done, so a stall shows up as a
# second with few or no responses rather than hiding in the mean.
WRK_TIMING = """
local lb_ffi = require("ffi")
lb_ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } lb_timespec;
int clock_gettime(int clk, lb_timespec *tp);
]]
local lb_ts = lb_ffi.new("lb_timespec")
local function lb_now_ms()
  lb_ffi.C.clock_gettime(1, lb_ts)
  return tonumber(lb_ts.tv_sec) * 1000 + tonumber(lb_ts.tv_nsec) / 1e6
end
lb_start = nil
lb_buckets = {}
local lb_threads = {}
function setup(thread) table.insert(lb_threads, thread) end
function init(args) lb_start = lb_now_ms() end
function response(status, headers, body)
  local b = math.floor((lb_now_ms() - lb_start) / 1000) + 1
  lb_buckets[b] = (lb_buckets[b] or 0) + 1
end
function done(summary, latency, requests)
  for _, t in ipairs(lb_threads) do
    local b, n, out = t:get("lb_buckets"), 0, {}
    for k, _ in pairs(b) do if k > n then n = k end end
    for i = 1, n do out[#out + 1] = tostring(b[i] or 0) end
    io.write("lb-seconds: ", table.concat(out, " "), "\\n")
  end
  io.write(string.format("lb-max-ms: %.3f\\n", latency.max / 1000))
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run: rate, latencies, errors, and its slowest whole second."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    max_ms: float = NAN
    slowest: int = -1  # fewest responses in one whole second of the run (-1: not measured)
    seconds: tuple[int, ...] = ()  # responses per second of the run, in order


def parse_seconds(out: str, duration: int) -> tuple[tuple[int, ...], int]:
    """The per-second counts the timing hook printed, and the minimum over whole seconds."""
    m = re.search(r"^lb-seconds: ?([\d ]*)$", out, re.M)
    counts = tuple(int(x) for x in m.group(1).split()) if m else ()
    whole = (counts + (0,) * duration)[:duration]  # a second without any response counts 0
    return counts, min(whole) if m and whole else -1


def parse_wrk(out: str, duration: int = 1) -> Run:
    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return NAN
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0)
    top = re.search(r"^lb-max-ms: ([\d.]+)$", out, re.M)
    seconds, slowest = parse_seconds(out, duration)
    return Run(float(rps.group(1)), ms("50%"), ms("99%"), errors,
               float(top.group(1)) if top else NAN, slowest, seconds)


def wrk(url: str, script: str | None, duration: int, conns: int) -> Run:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", "", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write((script or "") + WRK_TIMING)
        cmd[6] = f.name
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    return parse_wrk(out, duration)


def warm_up(url: str, script: str | None, conns: int, seconds: int = 1) -> None:
    """A short run first, so a measured run starts with its connections and paths warm."""
    wrk(url, script, seconds, conns)


def wait_ready(base: str, timeout: float = 60) -> None:
    """Until the app's /health answers and its boards are not warming."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{base}/health", timeout=2)
            if health.status_code == 200 and health.json().get("warming") is False:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base} did not become ready")
