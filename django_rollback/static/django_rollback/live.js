// The live page of a running rollback: poll its JSON progress and update the panel in place;
// reload once it has ended, so the whole entry (output, outcome) is shown as saved.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var panel = document.getElementById("rollback-live");
  if (!panel || panel.dataset.active !== "1") {
    return;
  }
  var url = panel.dataset.progressUrl;
  function show(id, text) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = text;
    }
  }
  function render(data) {
    var status = document.getElementById("rollback-live-status");
    status.textContent = data.status_display;
    status.className = "rollback-badge rollback-status-" + data.status;
    var bar = document.getElementById("rollback-live-bar");
    bar.max = data.steps_total;
    bar.value = data.steps_done;
    var steps = document.getElementById("rollback-live-steps");
    steps.textContent = steps.textContent.replace(/^\d+/, String(data.steps_done));
    document.getElementById("rollback-live-running-row").hidden = !data.running_step;
    show("rollback-live-running", data.running_step || "");
    show("rollback-live-step-seconds", data.step_seconds === null ? "" : data.step_seconds.toFixed(1));
    show("rollback-live-seconds", data.seconds.toFixed(1));
    show("rollback-live-output", data.output || "—");
    document.getElementById("rollback-live-error-row").hidden = !data.error;
    show("rollback-live-error", data.error || "");
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status);
        }
        return response.json();
      })
      .then(function (data) {
        render(data);
        if (data.active) {
          window.setTimeout(poll, 1000);
        } else {
          window.location.reload();
        }
      })
      .catch(function () {
        window.setTimeout(poll, 3000); // a restarting server: keep trying, slower
      });
  }
  window.setTimeout(poll, 1000);
});
