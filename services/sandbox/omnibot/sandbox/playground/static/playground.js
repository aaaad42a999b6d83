// The sandbox playground: live regions from the event stream, and the page's controls.
//
// Every region's HTML comes rendered and escaped by the server; this script only swaps it in.
// Anything the person does goes to the sandbox's JSON control API; its effects come back through
// the stream (the same way a bot reply or a webhook does), so there is one path to the screen.
"use strict";

(() => {
  const body = document.body;
  const live = document.getElementById("live");
  const toast = document.getElementById("toast");
  let caseId = body.dataset.case ? Number(body.dataset.case) : null;
  let customerName = "";
  let source = null;
  let retryTimer = null;
  let backoff = 1000;

  // --- live regions -----------------------------------------------------------------------

  function setLive(state, text) {
    live.dataset.state = state;
    live.querySelector(".live-text").textContent = text;
  }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  // The chat and the timeline follow new messages unless the person scrolled up to read.
  const SCROLLERS = new Set(["customer", "operator"]);
  const following = new Map();
  for (const name of SCROLLERS) {
    const el = document.querySelector(`[data-region="${name}"]`);
    if (!el) continue;
    following.set(el, true);
    el.addEventListener("scroll", () => following.set(el, nearBottom(el)), { passive: true });
  }

  function follow(el) {
    if (following.get(el)) el.scrollTop = el.scrollHeight;
  }

  // A picture that loads after the scroll makes the chat taller: keep the last message in view.
  document.addEventListener("load", (event) => {
    const el = event.target instanceof HTMLImageElement ? event.target.closest("[data-region]") : null;
    if (el && following.has(el)) follow(el);
  }, true);

  function applyRegions(regions) {
    for (const [name, html] of Object.entries(regions)) {
      const el = document.querySelector(`[data-region="${name}"]`);
      if (!el) continue;
      el.innerHTML = html; // server-rendered, autoescaped
      if (following.has(el)) follow(el);
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    const url = "/sandbox/events" + (caseId !== null ? `?case=${caseId}` : "");
    source = new EventSource(url);
    setLive("connecting", "connecting…");
    source.addEventListener("open", () => {
      backoff = 1000;
      setLive("live", "live");
    });
    source.addEventListener("state", (event) => {
      const data = JSON.parse(event.data);
      if ((data.case ?? null) !== caseId) return; // an event of the case shown before a switch
      applyRegions(data.regions);
      body.dataset.seq = String(data.seq);
      setLive("live", "live");
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the sandbox answered with an error): try again ourselves.
        setLive("down", "offline — retrying");
        retryTimer = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 10000);
      } else {
        setLive("connecting", "reconnecting…"); // EventSource retries with Last-Event-ID
      }
    });
  }

  function showCase(id, { push = true } = {}) {
    caseId = id;
    for (const el of following.keys()) following.set(el, true); // a new case starts at its end
    body.dataset.case = id === null ? "" : String(id);
    if (push) history.pushState({ case: id }, "", id === null ? "/" : `/?case=${id}`);
    connect(); // the first event carries every region of the case
  }

  window.addEventListener("popstate", (event) => {
    const id = event.state && event.state.case !== undefined ? event.state.case : null;
    showCase(id, { push: false });
  });

  // --- talking to the control API ---------------------------------------------------------

  let toastTimer = null;
  function say(text, kind = "error") {
    toast.textContent = text;
    toast.dataset.kind = kind;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.hidden = true; }, kind === "error" ? 6000 : 2500);
  }

  async function call(method, path, payload) {
    const init = { method, headers: {} };
    if (payload instanceof FormData) {
      init.body = payload;
    } else if (payload !== undefined) {
      init.body = JSON.stringify(payload);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      say("The sandbox does not answer.");
      throw error;
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = answer.detail ? `: ${answer.detail}` : "";
      say(`${answer.error || response.status}${detail}`);
      throw new Error(answer.error || String(response.status));
    }
    return answer;
  }

  async function busy(form, work) {
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      return await work();
    } catch (error) {
      return null;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function on(id, event, handler) {
    const el = document.getElementById(id);
    if (el) el.addEventListener(event, handler);
  }

  // Rules.
  on("rules-form", "submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const rules = [];
    const requireLabel = form.elements.require_label.checked;
    for (const on of ["incoming", "changed"]) {
      const url = form.elements[on].value.trim();
      if (url) rules.push({ webhook_url: url, on, require_label: requireLabel });
    }
    if (rules.length === 0) {
      say("Paste the channel's Chatbot webhook URL first.");
      return;
    }
    busy(form, async () => {
      await call("PUT", "/sandbox/rules", { rules });
      for (const rule of rules) {
        form.elements[rule.on].value = ""; // the secret stays off the screen once saved
        form.elements[rule.on].placeholder = "saved (paste to change)";
      }
      say("Rules saved.", "ok");
    });
  });
  on("remove-rules", "click", () => call("DELETE", "/sandbox/rules").then(() => say("Rules removed.", "ok")).catch(() => {}));

  // The customer.
  on("new-chat", "submit", (event) => {
    event.preventDefault();
    customerName = event.currentTarget.elements.name.value.trim();
    showCase(null);
    document.getElementById("f-message").focus();
  });

  const attach = document.getElementById("f-attach-file");
  const attachNames = document.getElementById("attach-names");
  attach.addEventListener("change", () => {
    attachNames.textContent = Array.from(attach.files).map((f) => f.name).join(", ");
  });

  const customerForm = document.getElementById("customer-form");
  customerForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = customerForm.elements.text.value;
    if (!text.trim() && attach.files.length === 0) return;
    const data = new FormData();
    data.append("text", text);
    if (caseId !== null) {
      data.append("case_id", String(caseId));
    } else {
      const name = customerName || document.getElementById("f-customer-name").value.trim();
      data.append("name", name);
    }
    for (const file of attach.files) data.append("file", file, file.name);
    busy(customerForm, async () => {
      const answer = await call("POST", "/sandbox/customer-messages", data);
      customerForm.elements.text.value = "";
      attach.value = "";
      attachNames.textContent = "";
      if (caseId !== answer.case_id) showCase(answer.case_id);
    });
  });
  customerForm.elements.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      customerForm.requestSubmit();
    }
  });

  // The operator.
  const operatorForm = document.getElementById("operator-form");
  operatorForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = operatorForm.elements.text.value;
    if (caseId === null) { say("Choose a case first."); return; }
    if (!text.trim()) return;
    busy(operatorForm, async () => {
      await call("POST", `/sandbox/cases/${caseId}/operator-messages`, { text });
      operatorForm.elements.text.value = "";
    });
  });
  operatorForm.elements.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      operatorForm.requestSubmit();
    }
  });

  // Labels (inside a live region: delegated).
  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.dataset.label) return;
    const path = `/sandbox/cases/${box.dataset.case}/labels/${box.dataset.label}`;
    call(box.checked ? "PUT" : "DELETE", path).catch(() => { box.checked = !box.checked; });
  });

  // Choosing a case (inside a live region: delegated).
  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[data-case]") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    showCase(Number(link.dataset.case));
  });

  // Reset.
  on("reset", "click", async (event) => {
    const button = event.currentTarget;
    if (button.dataset.armed !== "yes") {
      // Two clicks, not a dialog: a dialog would stop scripted browsers, and a stray click is cheap.
      button.dataset.armed = "yes";
      button.textContent = "Reset: sure?";
      setTimeout(() => { button.dataset.armed = ""; button.textContent = "Reset"; }, 3000);
      return;
    }
    button.dataset.armed = "";
    button.textContent = "Reset";
    try {
      await call("POST", "/sandbox/reset");
      document.querySelectorAll("#rules-form input[type=url]").forEach((input) => { input.value = ""; });
      document.getElementById("setup").open = true;
      showCase(null);
      say("The sandbox is empty again.", "ok");
    } catch (error) { /* said */ }
  });

  // Faults.
  on("fault-form", "submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const statuses = form.elements.statuses.value.split(/[\s,]+/).filter(Boolean);
    const delay = Number(form.elements.delay_s.value || 0);
    const afterAccept = form.elements.after_accept.checked;
    const responses = statuses.map((s) => ({
      status: s === "ok" || s === "-" ? null : Number(s),
      delay_s: delay,
      after_accept: afterAccept,
    }));
    if (responses.length === 0) { say("Give at least one status, e.g. 503 503."); return; }
    const spec = { path: form.elements.path.value, responses };
    if (form.elements.method.value) spec.method = form.elements.method.value;
    busy(form, async () => {
      const answer = await call("POST", "/sandbox/faults", spec);
      say(`${answer.queued} scripted answers queued.`, "ok");
    });
  });
  on("clear-faults", "click", () => call("DELETE", "/sandbox/faults").catch(() => {}));
  on("outage-form", "submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    busy(form, () => call("POST", "/sandbox/outage", {
      seconds: Number(form.elements.seconds.value),
      status: Number(form.elements.status.value),
    }));
  });
  on("end-outage", "click", () => call("DELETE", "/sandbox/outage").catch(() => {}));
  on("rate-form", "submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    busy(form, async () => {
      await call("POST", "/sandbox/rate-limit", { per_minute: Number(form.elements.per_minute.value) });
      await call("POST", "/sandbox/settings", { delete_labels_supported: form.elements.delete_labels.checked });
      say("Applied.", "ok");
    });
  });

  // Copy buttons.
  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    const text = document.getElementById(button.dataset.copy).textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) {
      // Not a secure context (a LAN address over http): select it for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents(document.getElementById(button.dataset.copy));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      say("Selected: press Ctrl+C to copy.", "ok");
      return;
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });

  history.replaceState({ case: caseId }, "", caseId === null ? "/" : `/?case=${caseId}`);
  for (const el of following.keys()) follow(el);
  connect();
})();
