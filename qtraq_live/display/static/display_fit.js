/* Fits the TV's board to whatever screen it is on, as an airport board would: the queue cards
   get the grid and the type size at which nothing overflows (biggest first); when even the
   smallest readable size cannot hold every queue, the queues are shown a page at a time, each
   page for a while (data.page_ms), with "1/3" in the header. The clinic's name and the recent
   calls are fitted the same way in their own boxes. Works on the DOM display.js renders;
   ArrowRight / ArrowLeft turn the page by hand. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var MIN = 0.5, MAX = 1.7, STEPS = 7;   // type scale: 1 = the designed size
  var page = 0, perPage = 0, pageTimer = null;
  var $ = function (id) { return document.getElementById(id); };

  /* Does anything in ``box`` not fit: the box or a card taller or wider than it is, an element
     whose text is wider than it (a long word), or text drawn outside its card (on either side)? */
  function overflows(box) {
    var cards = box.classList.contains("d-queues") ? box.querySelectorAll(".d-queue:not([hidden])") : [box];
    if (box.scrollHeight > box.clientHeight + 1 || box.scrollWidth > box.clientWidth + 1) { return true; }
    for (var c = 0; c < cards.length; c++) {
      var card = cards[c], rect = card.getBoundingClientRect();
      if (card.scrollHeight > card.clientHeight + 1 || card.scrollWidth > card.clientWidth + 1) { return true; }
      var els = card.querySelectorAll("*");
      for (var i = 0; i < els.length; i++) {
        var el = els[i];
        if (el.clientWidth && el.scrollWidth > el.clientWidth + 1) { return true; }
        var r = el.getBoundingClientRect();
        if (r.width && (r.left < rect.left - 1 || r.right > rect.right + 1 || r.bottom > rect.bottom + 1)) { return true; }
      }
    }
    return false;
  }

  function setScale(box, s) { box.style.setProperty("--fs", s.toFixed(3)); }

  /* The biggest scale in [MIN, max] at which nothing in ``box`` overflows, applied; null if
     even MIN overflows (MIN is left applied). */
  function fitScale(box, max) {
    var top = max || MAX;
    setScale(box, top);
    if (!overflows(box)) { return top; }
    setScale(box, MIN);
    if (overflows(box)) { return null; }
    var lo = MIN, hi = top;
    for (var i = 0; i < STEPS; i++) {
      var mid = (lo + hi) / 2;
      setScale(box, mid);
      if (overflows(box)) { hi = mid; } else { lo = mid; }
    }
    setScale(box, lo);
    return lo;
  }

  /* Column counts worth trying for n cards in a box of this shape. */
  function columnChoices(n, box) {
    var ratio = box.clientWidth / Math.max(1, box.clientHeight);
    var guess = Math.max(1, Math.min(n, Math.round(Math.sqrt(n * ratio * 0.9))));
    var out = [];
    [guess, guess - 1, guess + 1].forEach(function (c) { if (c >= 1 && c <= n && out.indexOf(c) < 0) { out.push(c); } });
    return out;
  }

  function setGrid(box, n, cols) {
    box.style.setProperty("--cols", String(cols));
    box.style.setProperty("--rows", String(Math.ceil(n / cols)));
  }

  /* The best grid for the visible cards: the one allowing the biggest type. */
  function fitCards(box, n) {
    var best = null;
    columnChoices(n, box).forEach(function (cols) {
      setGrid(box, n, cols);
      var s = fitScale(box);
      if (s !== null && (best === null || s > best.s)) { best = { cols: cols, s: s }; }
    });
    if (best === null) { return false; }
    setGrid(box, n, best.cols);
    setScale(box, best.s);
    return true;
  }

  function showPage(cards, index, size) {
    cards.forEach(function (c, i) { c.hidden = Math.floor(i / size) !== index; });
  }

  function fitQueues() {
    var box = $("queues");
    var cards = Array.prototype.slice.call(box.querySelectorAll(".d-queue"));
    var n = cards.length, badge = $("page");
    if (!n) { QT.show(badge, false); return; }
    /* Fewest pages first: every queue at once, else as many per page as still fit. */
    var size = perPage && perPage <= n ? perPage : n;
    for (; size >= 1; size--) {
      var pages = Math.ceil(n / size);
      var index = Math.min(page, pages - 1);
      showPage(cards, index, size);
      if (fitCards(box, Math.min(size, n - index * size)) || size === 1) { break; }
    }
    /* Keep the page size found while the queues stay the same, but try more again when fewer. */
    perPage = size < n ? size : 0;
    var count = Math.ceil(n / Math.max(size, 1));
    page = Math.min(page, count - 1);
    badge.textContent = count > 1 ? (page + 1) + " / " + count : "";
    QT.show(badge, count > 1);
    box.dataset.pages = String(count);
    box.dataset.page = String(page);
    clearTimeout(pageTimer);
    if (count > 1) { pageTimer = setTimeout(function () { turn(1); }, d.page_ms || 12000); }
  }

  function turn(step) {
    var count = Number($("queues").dataset.pages || "1");
    page = (page + step + count) % count;
    fitQueues();
  }

  function fit() {
    perPage = 0;
    fitQueues();
    var head = document.querySelector(".d-head"), recent = document.querySelector(".d-recent");
    if (head) { fitScale(head, 1); }  // the header and the recent calls never outgrow their design size
    if (recent) { fitScale(recent, 1); }
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.key === "ArrowRight") { turn(1); } else if (ev.key === "ArrowLeft") { turn(-1); }
  });

  QT.board = { fit: fit, turn: turn };
})();
