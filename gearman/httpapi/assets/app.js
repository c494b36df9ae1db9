// gearsched's page: its buttons call the JSON API. With a token
// configured on the server the page asks for it and keeps it for this
// browser tab only (sessionStorage).
"use strict";
(function () {
  const tokenKey = "gearsched-token";
  const tokenBox = document.getElementById("token");
  if (tokenBox) {
    tokenBox.value = sessionStorage.getItem(tokenKey) || "";
    tokenBox.addEventListener("change", function () {
      sessionStorage.setItem(tokenKey, tokenBox.value.trim());
    });
  }
  const status = document.getElementById("status");

  function say(message, bad) {
    status.textContent = message;
    status.className = bad ? "bad" : "ok";
  }

  async function call(method, path) {
    const headers = {};
    const token = sessionStorage.getItem(tokenKey);
    if (token) {
      headers["Authorization"] = "Bearer " + token;
    }
    const res = await fetch(path, { method: method, headers: headers });
    let body = {};
    try {
      body = await res.json();
    } catch (e) {
      // not JSON: the status line says enough
    }
    if (!res.ok) {
      throw new Error(body.error || res.status + " " + res.statusText);
    }
    return body;
  }

  document.addEventListener("click", async function (ev) {
    const button = ev.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    const handle = button.dataset.handle;
    const action = button.dataset.action;
    let path = "/api/v1/scheduled/" + encodeURIComponent(handle);
    if (action !== "cancel") {
      path += "/" + action;
    }
    button.disabled = true;
    try {
      await call(action === "cancel" ? "DELETE" : "POST", path);
      if (action === "cancel") {
        document.querySelectorAll("tr[data-handle]").forEach(function (row) {
          if (row.dataset.handle === handle) {
            row.remove();
          }
        });
        say("Cancelled " + handle + ".");
      } else {
        location.reload(); // a schedule's state and next run change
      }
    } catch (e) {
      say(action + " " + handle + ": " + e.message, true);
      button.disabled = false;
    }
  });
})();
