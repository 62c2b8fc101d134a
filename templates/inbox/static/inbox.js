// The web inbox's only script (served from /inbox/static/; the pages allow no other).
// It adds two things to the server-rendered pages: the live list (Server-Sent Events
// from /inbox/events) and the delete buttons (DELETE with a JSON content type, which
// the relay's gate requires of every write). Captured text only ever goes into the
// page through textContent, never as HTML.
"use strict";

(function () {
  const status = document.getElementById("status");

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-delete]");
    if (!button) {
      return;
    }
    event.preventDefault();
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
      return;
    }
    button.disabled = true;
    fetch(button.dataset.delete, {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the relay answered " + response.status);
        }
        return response.json();
      })
      .then(function (result) {
        say("Deleted " + result.deleted + " message(s).");
        window.location.assign(button.dataset.then || "/inbox/");
      })
      .catch(function (error) {
        button.disabled = false;
        say("Delete failed: " + error.message);
      });
  });

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function addRow(tbody, message) {
    if (tbody.querySelector('tr[data-id="' + CSS.escape(message.id) + '"]')) {
      return false; // already shown (the page and the stream may both have it)
    }
    const row = document.createElement("tr");
    row.dataset.id = message.id;
    row.className = "fresh";
    const when = document.createElement("time");
    when.dateTime = message.received_at;
    when.textContent = message.received_at;
    cell(row, "", "when").appendChild(when);
    cell(row, message.from);
    cell(row, message.to.join(", "));
    const link = document.createElement("a");
    link.href = message.url;
    link.textContent = message.subject || "(no subject)";
    cell(row, "").appendChild(link);
    cell(row, message.size, "num");
    tbody.insertBefore(row, tbody.firstChild);
    return true;
  }

  function bump(id, by) {
    const element = document.getElementById(id);
    if (!element) {
      return;
    }
    const next = Number(element.dataset.total || element.textContent || "0") + by;
    element.dataset.total = String(next);
    element.hidden = false;
    element.textContent = next.toLocaleString("en") + (element.dataset.exact === "0" ? "+" : "");
  }

  const table = document.getElementById("messages");
  if (table && table.dataset.events && window.EventSource) {
    const tbody = table.tBodies[0];
    const source = new EventSource(table.dataset.events);
    source.addEventListener("open", function () {
      table.dataset.connected = "1";
    });
    source.addEventListener("message", function (event) {
      const message = JSON.parse(event.data);
      if (table.dataset.live !== "1") {
        document.getElementById("new-mail").hidden = false;
        return;
      }
      if (addRow(tbody, message)) {
        const shown = document.getElementById("shown");
        if (shown) {
          shown.textContent = String(tbody.rows.length);
          shown.hidden = false;
        }
        bump("total", 1);
      }
    });
    source.addEventListener("reload", function () {
      source.close();
      window.location.reload();
    });
  }
})();
