// The portal's one script: while an address is typed on the application form, ask the API
// whether it is free (GET /api/v1/addresses/check) and offer the free suggestions as buttons.
// Everything works without it: the form's "Check the address" button does the same on the server.
(function () {
  "use strict";
  var form = document.getElementById("apply-form");
  if (!form) {
    return;
  }
  var local = document.getElementById("local");
  var domain = document.getElementById("domain");
  var out = document.getElementById("availability");
  var timer = null;
  var latest = 0;

  function words(name, address) {
    return (out.dataset[name] || "").replace("{address}", address);
  }

  function line(text, kind) {
    var p = document.createElement("p");
    p.className = kind;
    p.textContent = text;
    return p;
  }

  function use(address) {
    var at = address.lastIndexOf("@");
    local.value = address.slice(0, at);
    domain.value = address.slice(at + 1);
    check();
    local.focus();
  }

  function show(answer) {
    out.textContent = "";
    if (answer.available) {
      out.appendChild(line(words("free", answer.address), "free"));
      return;
    }
    out.appendChild(line(words("taken", answer.address), "taken"));
    var list = document.createElement("ul");
    list.className = "suggestions";
    answer.suggestions.forEach(function (suggestion) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "suggestion";
      button.textContent = suggestion;
      button.setAttribute("aria-label", words("pick", suggestion));
      button.addEventListener("click", function () { use(suggestion); });
      item.appendChild(button);
      list.appendChild(item);
    });
    out.appendChild(list);
  }

  function check() {
    var typed = local.value.trim();
    if (!typed) {
      out.textContent = "";
      return;
    }
    var address = typed.indexOf("@") >= 0 ? typed : typed + "@" + domain.value;
    var mine = ++latest;
    fetch("/api/v1/addresses/check?address=" + encodeURIComponent(address), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (body) { return [response.ok, body]; });
    }).then(function (result) {
      if (mine !== latest) {
        return;  // a newer check is on its way
      }
      if (result[0]) {
        show(result[1]);
      } else {
        out.textContent = "";
        out.appendChild(line(words("invalid", address), "taken"));
      }
    }).catch(function () {
      out.textContent = "";  // the server-side check still works
    });
  }

  local.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  });
  domain.addEventListener("change", check);
})();
