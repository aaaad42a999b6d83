// omnibot console: small progressive enhancements. Every page works without this file.
// - [data-copy="ID"] buttons copy the value of element ID to the clipboard.
// - #live[data-refresh-ms] re-reads its own page while open and swaps in the fresh part.
"use strict";

(function () {
  function copyFrom(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied") || "Copied";
      button.classList.add("copied");
      window.setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 1500);
    };
    var fallback = function () {
      source.focus();
      source.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) { event.preventDefault(); copyFrom(button); }
  });

  function refresh(live) {
    var every = parseInt(live.getAttribute("data-refresh-ms"), 10) || 3000;
    var tick = function () {
      if (document.hidden) { window.setTimeout(tick, every); return; }
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
        .then(function (response) {
          if (!response.ok) { throw new Error(String(response.status)); }
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          var current = document.getElementById("live");
          if (fresh && current && fresh.innerHTML !== current.innerHTML) {
            current.replaceWith(document.adoptNode(fresh));
          }
        })
        .catch(function () { /* try again at the next tick */ })
        .then(function () { window.setTimeout(tick, every); });
    };
    window.setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live) { refresh(live); }
  });
})();
