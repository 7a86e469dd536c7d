/* Reader app of the medadv reader study (paper 001, "Human reader study").
 *
 * One image (or, in the education session, one real / fake / difference triplet) at a time. In reading sessions the
 * reader answers Real (R), Not real (N) or Unsure (U), optionally with a confidence 1-5 (keys 1-5), and confirms with
 * Enter; observation and education sessions only need Next (Enter). The reading time of an item runs from the moment
 * its image(s) are decoded and shown to the confirmation (the stage then carries data-shown="<position>"). There is
 * no way back: a confirmed answer is final. The images are shown by viewer.js (MedadvViewer: zoom, pan,
 * window/level), which this file only hands the image files to; nothing the viewer does is part of an answer.
 *
 * Progress is written to localStorage after every confirmation, under "medadv-reader/<package>/session<N>/<reader>",
 * so a reload or a closed tab loses nothing; the reader enters the same id to continue (the clock of the image that
 * was on screen restarts). At the end the responses are offered as a CSV download (a Blob link) with the columns
 * reader, session, image_id, answer, confidence, reading_seconds, order.
 */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("session-data").textContent);
  var ITEMS = DATA.items;
  var STORE = "medadv-reader/" + DATA.package_id + "/session" + DATA.session;
  var ANSWER_KEYS = { r: "real", n: "not_real", u: "unsure" };
  var COLUMNS = DATA.columns;  // the CSV export's columns, from medadv.reader_app.responses.RESPONSE_COLUMNS
  var READER_RE = /^[A-Za-z0-9_-]{1,40}$/;
  var ASK_CONFIDENCE = DATA.mode === "read" && DATA.ask_confidence;
  // Served by the workshop server, remote.js (loaded before this script) also sends every saved answer to it and
  // merges its record on Start; offline packages have no window.medadvRemote.
  var REMOTE = window.medadvRemote || null;

  var state = null;
  var choice = { answer: null, confidence: null };
  var shownAt = null;

  function $(id) { return document.getElementById(id); }

  function show(name) {
    ["error", "start", "read", "done"].forEach(function (s) { $("screen-" + s).hidden = s !== name; });
  }

  function fail(message) {
    shownAt = null;
    $("error-text").textContent = message;
    show("error");
  }

  function storageWorks() {
    try {
      var probe = STORE + "/probe";
      localStorage.setItem(probe, "1");
      var ok = localStorage.getItem(probe) === "1";
      localStorage.removeItem(probe);
      return ok;
    } catch (e) {
      return false;
    }
  }

  function load(reader) {
    var raw = localStorage.getItem(STORE + "/" + reader);
    if (raw === null) return null;
    var saved = JSON.parse(raw);
    if (!saved || !Array.isArray(saved.responses) || saved.reader !== reader) {
      throw new Error("the saved progress of reader " + reader + " is damaged");
    }
    return saved;
  }

  function save() {
    try {
      localStorage.setItem(STORE + "/" + state.reader, JSON.stringify(state));
      if (REMOTE) REMOTE.push(state);
    } catch (e) {
      fail("The browser refused to save the answers (" + e.message + "). Free some browser storage and reload: " +
           "the answers confirmed so far are kept.");
      throw e;
    }
  }

  function hint(text) { $("hint").textContent = text; }

  function unit() { return DATA.mode === "educate" ? "case" : "image"; }

  function markSelected() {
    document.querySelectorAll("button.answer").forEach(function (b) {
      b.classList.toggle("selected", b.dataset.answer === choice.answer);
    });
    document.querySelectorAll("button.conf").forEach(function (b) {
      b.classList.toggle("selected", Number(b.dataset.confidence) === choice.confidence);
      b.disabled = choice.answer === "unsure";
    });
  }

  function next() {
    var i = state.responses.length;
    if (i >= ITEMS.length) {
      state.finished = true;
      save();
      finish();
      return;
    }
    var item = ITEMS[i];
    choice = { answer: null, confidence: null };
    shownAt = null;
    markSelected();
    hint("");
    $("progress").textContent = unit().charAt(0).toUpperCase() + unit().slice(1) + " " + (i + 1) + " of " + ITEMS.length;
    var stage = $("stage");
    delete stage.dataset.shown;
    show("read");
    var panels = DATA.mode === "educate"
      ? [{ src: item.real_file, caption: "Real" }, { src: item.fake_file, caption: "Fake (computer-generated)" },
         { src: item.diff_file, caption: "Difference (real - fake)" }]
      : [{ src: item.file, caption: "" }];
    window.MedadvViewer.show(stage, panels).then(function () {
      if (state.responses.length !== i) return;
      shownAt = performance.now();
      stage.dataset.shown = String(i + 1);
    }, function () {
      fail("An image of this session (" + panels.map(function (p) { return p.src; }).join(", ") +
           ") could not be loaded. Keep index.html in its session folder, next to the images/ folder, and reload.");
    });
  }

  function choose(answer) {
    if (shownAt === null) return;
    choice.answer = answer;
    if (answer === "unsure") choice.confidence = null;
    markSelected();
    hint("");
  }

  function rate(confidence) {
    if (shownAt === null || choice.answer === "unsure") return;
    choice.confidence = confidence;
    markSelected();
    hint("");
  }

  function commit() {
    if (shownAt === null || state === null || state.finished) return;
    var answer = "seen";
    var confidence = "";
    if (DATA.mode === "read") {
      if (!choice.answer) { hint("Choose Real (R), Not real (N) or Unsure (U) first."); return; }
      if (ASK_CONFIDENCE && choice.answer !== "unsure" && !choice.confidence) {
        hint("Give your confidence with the keys 1 (a guess) to 5 (certain) first.");
        return;
      }
      answer = choice.answer;
      confidence = choice.confidence === null ? "" : choice.confidence;
    }
    var seconds = (performance.now() - shownAt) / 1000;
    shownAt = null;
    state.responses.push({
      order: state.responses.length + 1,
      image_id: ITEMS[state.responses.length].image_id,
      answer: answer,
      confidence: confidence,
      reading_seconds: Math.round(seconds * 1000) / 1000
    });
    save();
    next();
  }

  function csvField(value) {
    var text = String(value);
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function toCsv() {
    var lines = [COLUMNS.join(",")];
    state.responses.forEach(function (r) {
      var row = { reader: state.reader, session: DATA.session, image_id: r.image_id, answer: r.answer,
                  confidence: r.confidence, reading_seconds: r.reading_seconds.toFixed(3), order: r.order };
      lines.push(COLUMNS.map(function (c) { return csvField(row[c]); }).join(","));
    });
    return lines.join("\n") + "\n";
  }

  function finish() {
    shownAt = null;
    $("progress").textContent = "Done: " + state.responses.length + " of " + ITEMS.length;
    $("done-text").textContent = "Reader " + state.reader + ": " + state.responses.length + " " + unit() + "s " +
      (DATA.mode === "read" ? "answered" : "viewed") + " in session " + DATA.session + ".";
    var link = $("download");
    link.href = URL.createObjectURL(new Blob([toCsv()], { type: "text/csv" }));
    link.download = "responses_session" + DATA.session + "_" + state.reader + ".csv";
    show("done");
  }

  function start(reader) {
    var saved;
    try {
      saved = load(reader);
    } catch (e) {
      fail("The saved progress of reader " + reader + " cannot be read (" + e.message + "). Ask the study's organiser.");
      return;
    }
    if (saved === null) {
      saved = { version: 1, package_id: DATA.package_id, session: DATA.session, reader: reader, responses: [],
                finished: false };
    }
    if (!REMOTE) { begin(saved); return; }
    REMOTE.resume(saved, fail).then(begin, function (e) { fail("This session cannot start: " + e.message + "."); });
  }

  function begin(saved) {
    var reader = saved.reader;
    state = saved;
    localStorage.setItem(STORE + "/last-reader", reader);
    save();
    $("reader-label").textContent = "Reader " + reader;
    if (state.finished) finish(); else next();
  }

  function resumeNote() {
    var reader = $("reader-id").value.trim();
    var note = $("resume-note");
    var saved = null;
    try { saved = READER_RE.test(reader) ? load(reader) : null; } catch (e) { saved = null; }
    note.hidden = saved === null;
    if (saved !== null) {
      note.textContent = saved.finished
        ? "Reader " + reader + " has finished this session; Start shows the download link again."
        : "Reader " + reader + " has confirmed " + saved.responses.length + " of " + ITEMS.length + " " + unit() +
          "s; Start continues with " + unit() + " " + (saved.responses.length + 1) + ".";
      $("start-button").textContent = "Continue";
    } else {
      $("start-button").textContent = "Start";
    }
  }

  function init() {
    $("session-title").textContent = "Reader study - session " + DATA.session;
    $("start-title").textContent = "Session " + DATA.session + ": " + ITEMS.length + " " + unit() + "s";
    $("instructions").textContent = DATA.instructions;
    $("confidence-note").hidden = !ASK_CONFIDENCE;
    $("answers").hidden = DATA.mode !== "read";
    $("confidence").hidden = !ASK_CONFIDENCE;
    $("next-label").textContent = DATA.mode === "read" ? "Confirm" : "Next";
    if (!storageWorks()) {
      fail("This browser does not let the page keep its answers (localStorage is blocked for pages opened from " +
           "files), so progress could be lost. Open index.html in Chromium, Chrome, Edge or Firefox, or allow site " +
           "data for local files.");
      return;
    }
    var last = localStorage.getItem(STORE + "/last-reader");
    if (last && READER_RE.test(last)) $("reader-id").value = last;
    if (REMOTE) REMOTE.init();
    $("reader-id").addEventListener("input", resumeNote);
    $("start-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var reader = $("reader-id").value.trim();
      if (!READER_RE.test(reader)) { $("resume-note").hidden = false; $("resume-note").textContent = "Use letters, digits, _ and - only."; return; }
      $("reader-id").blur();
      start(reader);
    });
    document.querySelectorAll("button.answer").forEach(function (b) {
      b.addEventListener("click", function () { b.blur(); choose(b.dataset.answer); });
    });
    document.querySelectorAll("button.conf").forEach(function (b) {
      b.addEventListener("click", function () { b.blur(); rate(Number(b.dataset.confidence)); });
    });
    $("next-button").addEventListener("click", function () { $("next-button").blur(); commit(); });
    document.addEventListener("keydown", function (ev) {
      if ($("screen-read").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var key = ev.key.toLowerCase();
      if (key === "enter" || key === " " || (DATA.mode !== "read" && key === "arrowright")) {
        ev.preventDefault();
        if (!ev.repeat) commit();
      } else if (DATA.mode === "read" && ANSWER_KEYS.hasOwnProperty(key)) {
        ev.preventDefault();
        choose(ANSWER_KEYS[key]);
      } else if (ASK_CONFIDENCE && /^[1-5]$/.test(key)) {
        ev.preventDefault();
        rate(Number(key));
      }
    });
    window.addEventListener("storage", function (ev) {
      if (state !== null && ev.key === STORE + "/" + state.reader) {
        fail("This session of reader " + state.reader + " was continued in another tab or window; close this one " +
             "and go on there (or reload this page to continue here).");
      }
    });
    resumeNote();
    show("start");
  }

  init();
}());
