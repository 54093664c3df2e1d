// dockhand's status page: its live parts. Every page works without this script; it only
// follows the running jobs a page names (`data-follow="<job id>"`): each step as it starts
// and ends, what a waiting step reports, and a reload of the page when the job has ended.
"use strict";
(function () {
  // A few streams at most: the server holds a share of them per address.
  var MOST = 4;
  var followed = document.querySelectorAll("[data-follow]");
  for (var i = 0; i < followed.length && i < MOST; i++) {
    follow(followed[i]);
  }

  function follow(element) {
    var id = element.getAttribute("data-follow");
    var list = element.querySelector("ol.live");
    var source = new EventSource("/ui/jobs/" + encodeURIComponent(id) + "/events");
    function say(text) {
      if (!list) {
        return;
      }
      var item = document.createElement("li");
      item.textContent = text;
      list.appendChild(item);
    }
    function on(name, describe) {
      source.addEventListener(name, function (event) {
        say(describe(JSON.parse(event.data)));
      });
    }
    function where(step) {
      return step.kind + (step.node ? " on " + step.node : "");
    }
    // Each stream starts with what happened so far: a stream that follows on from an
    // ended one (the server bounds their length) tells it all again.
    source.addEventListener("job-started", function () {
      if (list) {
        list.textContent = "";
      }
      element.setAttribute("data-live", "following");
    });
    on("step-started", function (data) { return where(data.step) + ": started"; });
    on("step-finished", function (data) { return where(data.step) + ": " + data.step.status; });
    on("progress", function (data) { return data.message; });
    on("locked", function () { return "holds the target's lock"; });
    source.addEventListener("job-finished", function (event) {
      source.close();
      var job = JSON.parse(event.data).job;
      element.setAttribute("data-live", job.status);
      window.location.reload();
    });
  }
})();
