// A second click must not send a second rollback: disable the buttons once the form is sent.
// (The server refuses a second run anyway; this only spares the operator the error.)
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("rollback-form");
  if (!form) {
    return;
  }
  form.addEventListener("submit", function (event) {
    var clicked = event.submitter;
    if (clicked && clicked.name) {
      // Disabled buttons are not sent, so carry the clicked one's name in a hidden field.
      var marker = document.createElement("input");
      marker.type = "hidden";
      marker.name = clicked.name;
      marker.value = clicked.value;
      form.appendChild(marker);
    }
    form.querySelectorAll("input[type=submit]").forEach(function (button) {
      button.disabled = true;
    });
    form.classList.add("rollback-sending");
  });
});
