/* The ticket page's withdrawal button (_ticket_privacy.html): deletes this ticket's name and
   contact details on the server; the ticket keeps its place. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var button = document.getElementById("p-withdraw");
  if (!button || !d.api_path) { return; }
  button.addEventListener("click", function () {
    button.disabled = true;
    QT.api("POST", d.api_path + "/withdraw", {}).then(function () {
      QT.show(button, false);
      QT.show(document.getElementById("p-withdrawn"), true);
    }, function (err) {
      button.disabled = false;
      var e = document.getElementById("p-error");
      if (e) { e.textContent = QT.errorText(err); QT.show(e, true); }
    });
  });
}());
