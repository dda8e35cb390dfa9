"use strict";
// Polls /ui/live every second and drives Locust's API: POST /swarm (form-encoded, as
// Locust's UI posts it), POST /stop, POST /stats/reset. Same origin only (the server
// refuses state changes from other origins).
(function () {
  const $ = (id) => document.getElementById(id);
  let running = false;
  let lastState = "";

  function say(text) { $("message").textContent = text || ""; }

  // Every state change is a form POST (the server refuses others): Stop and Reset send
  // an empty form.
  async function call(path, body) {
    const init = {
      method: "POST",
      body: body || "",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    };
    const response = await fetch(path, init);
    let reply = {};
    try { reply = await response.json(); } catch (e) { reply = { message: response.statusText }; }
    if (!response.ok) { say(reply.message || ("HTTP " + response.status)); return false; }
    say("");
    return true;
  }

  function showForm(state) {
    running = ["spawning", "running", "stopping"].includes(state) ;
    $("start").textContent = running ? "Update users" : "Start";
    $("host").disabled = running;
    $("run_time").disabled = running;
    $("stop").disabled = !running;
    $("reset").disabled = !running;
  }

  function fixed(value, digits) { return Number(value || 0).toFixed(digits); }

  async function refresh() {
    let live;
    try {
      const response = await fetch("/ui/live", { cache: "no-store" });
      if (!response.ok) { return; }
      live = await response.json();
    } catch (e) { return; }
    const r = live.requests;
    $("state").textContent = r.state;
    $("users").textContent = r.user_count;
    $("target").textContent = r.target_user_count;
    $("rps").textContent = fixed(r.total_rps, 1);
    $("fails").textContent = fixed(r.total_fail_per_sec, 1);
    $("ratio").textContent = fixed(r.fail_ratio * 100, 2) + "%";
    $("lag").textContent = fixed(r.schedule_lag_p99_ms, 2);
    // After a test, the form keeps the users it ended at (as Locust's does).
    const active = ["spawning", "running", "stopping"];
    if (r.state === "stopped" && active.includes(lastState)) {
      $("user_count").value = r.target_user_count;
    }
    lastState = r.state;
    showForm(r.state);
    $("exception_count").textContent = live.exception_count;
    if ($("logs_view").open) { refreshLogs(); }
    if ($("exceptions_view").open) { refreshExceptions(); }
    const s = live.sections;
    if (s) {
      $("charts").innerHTML = s.charts;
      $("stats").innerHTML = s.stats;
      $("failures").innerHTML = s.failures;
      $("audit").innerHTML = s.audit;
    }
  }

  async function getJson(path) {
    try {
      const response = await fetch(path, { cache: "no-store" });
      return response.ok ? await response.json() : null;
    } catch (e) { return null; }
  }

  // Text from the server goes in as text, never as markup.
  async function refreshLogs() {
    const logs = await getJson("/logs");
    if (logs) { $("logs").textContent = logs.master.join("\n"); }
  }

  async function refreshExceptions() {
    const reply = await getJson("/exceptions");
    if (!reply) { return; }
    const body = $("exceptions");
    body.replaceChildren();
    for (const e of reply.exceptions) {
      const tr = document.createElement("tr");
      for (const value of [e.count, e.msg, e.traceback, e.nodes]) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  $("logs_view").addEventListener("toggle", () => { if ($("logs_view").open) { refreshLogs(); } });
  $("exceptions_view").addEventListener("toggle", () => {
    if ($("exceptions_view").open) { refreshExceptions(); }
  });

  $("swarm").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new URLSearchParams();
    for (const id of ["user_count", "spawn_rate"]) { form.set(id, $(id).value); }
    if (!running) {
      // An empty run time is sent too: it means "until Stop".
      form.set("run_time", $("run_time").value.trim());
      if ($("host").value.trim() !== "") { form.set("host", $("host").value.trim()); }
    }
    await call("/swarm", form.toString());
    refresh();
  });
  $("stop").addEventListener("click", async () => { await call("/stop"); refresh(); });
  $("reset").addEventListener("click", async () => { await call("/stats/reset"); refresh(); });
  $("newtest").addEventListener("click", () => {
    if (running) { say("Stop the running test first."); return; }
    for (const id of ["charts", "stats", "failures", "audit"]) { $(id).innerHTML = ""; }
    say("Set users, spawn rate and run time, then Start.");
    $("user_count").focus();
  });

  refresh();
  setInterval(refresh, 1000);
})();
