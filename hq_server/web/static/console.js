// StationWatch console: live updates (server-sent events), countdowns, small helpers.
// No build step; htmx (vendored) does the fetching and swapping.
(function () {
  "use strict";

  // Countdowns: <span class="countdown" data-deadline="ISO" data-left="..." data-late="...">
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function clock(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.dataset.deadline) - now;
      el.textContent = (left >= 0 ? el.dataset.left : el.dataset.late) + " " + clock(left);
      el.classList.toggle("late", left < 0);
    });
  }

  // Live: one EventSource; a change refreshes every element whose data-live names its topic.
  var pending = {}, timer = null;
  function refresh(topics) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var wanted = el.dataset.live.split(/\s+/);
      if (topics === null || wanted.some(function (t) { return topics[t]; })) {
        if (window.htmx) { window.htmx.trigger(el, "sw-refresh"); }
      }
    });
  }
  function later(topic) {
    pending[topic] = true;
    if (timer === null) {
      // Changes come in bursts (a batch of events): one refresh per second at most.
      timer = setTimeout(function () {
        var topics = pending; pending = {}; timer = null; refresh(topics);
      }, 1000);
    }
  }
  // Parts marked data-live-catchup (a job that may end any moment) are fetched again once the
  // stream is open: a change between the page's rendering and the stream's start is not lost.
  function catchUp() {
    document.querySelectorAll("[data-live-catchup]").forEach(function (el) {
      if (window.htmx) { window.htmx.trigger(el, "sw-refresh"); }
    });
  }
  function connect(url) {
    var banner = document.getElementById("live-status");
    var source = new EventSource(url);
    var lost = false, first = true;
    source.onopen = function () {
      if (banner) { banner.hidden = true; }
      document.body.dataset.live = "connected";
      if (lost) { lost = false; refresh(null); }  // what happened meanwhile
      else if (first) { catchUp(); }
      first = false;
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // HQ ended the stream for good (204: the session ended): the page asks for a login.
        window.location.reload();
        return;
      }
      lost = true;
      if (banner) { banner.hidden = false; }
      document.body.dataset.live = "lost";
    };
    source.addEventListener("change", function (e) {
      try { later(JSON.parse(e.data).topic); } catch (err) { later("all"); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSwap", tick);
    // A part fetched again because the stream said it changed is not someone using the
    // console: the header tells HQ not to move the session's idle clock (web/auth.py).
    document.body.addEventListener("htmx:configRequest", function (e) {
      var cause = e.detail.triggeringEvent;
      if (cause && cause.type === "sw-refresh") { e.detail.headers["X-SW-Refresh"] = "1"; }
    });
    var url = document.body.dataset.liveUrl;
    if (url && window.EventSource) { connect(url); }
  });
})();
