/* Ticket slips and posters: print on request, or at once when opened with ?autoprint=1
   (the reception console loads the slip in a hidden frame and this prints it). */
"use strict";
(function () {
  var btn = document.getElementById("print-now");
  if (btn) { btn.addEventListener("click", function () { window.print(); }); }
  if (new URLSearchParams(location.search).get("autoprint") === "1") {
    window.addEventListener("load", function () { window.print(); });
  }
})();
