/* Workshop mode of the reader app: the storage and submission part that talks to `medadv-reader serve`.
 *
 * Loaded before app.js only in pages the workshop server renders (medadv.reader_app.server; the offline packages do
 * not contain it). It sets window.medadvRemote, which app.js uses in two places:
 *   resume(saved, fail): on Start, asks the server for the answers it holds for this participant and session (GET)
 *     and returns (a Promise of) the state to continue from: the browser's own record when it agrees with the
 *     server's and goes further (answers confirmed while offline), else the server's; `fail` shows a fatal error;
 *   push(state): after every save, sends the confirmed answers the server has not acknowledged yet, one POST each,
 *     in reading order; without network it retries (1 s, doubling, at most 15 s) and shows how many answers wait.
 * A server whose database is busy answers 503 with Retry-After (seconds): both calls then wait that long (1-30 s) and
 * send the same request again by themselves, showing "Server busy" meanwhile (Start gives up after BUSY_TRIES).
 * The browser's localStorage still keeps every confirmed answer, so a closed tab or lost network loses nothing; the
 * server refuses an answer for an image already confirmed (no going back) and the page then stops with its message.
 * The participant's token travels in the Authorization header; the reader id is fixed by the link. init() also loads
 * the session's images at once, so that they stay readable while the network is down.
 */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("session-data").textContent);
  var CFG = DATA.remote;
  var acked = 0;
  var latest = null;
  var sending = false;
  var retryMs = 1000;
  var prefetched = [];
  var fatal = function (message) { window.alert(message); };
  var BUSY_TRIES = 60;

  function status(text, waiting) {
    var el = document.getElementById("remote-status");
    if (!el) {
      el = document.createElement("span");
      el.id = "remote-status";
      el.setAttribute("aria-live", "polite");
      document.querySelector("header").appendChild(el);
    }
    el.textContent = text;
    el.dataset.waiting = waiting ? "1" : "0";
  }

  function request(method, body) {
    return fetch(CFG.api, {
      method: method,
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + CFG.token },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit"
    }).then(function (res) {
      var wait = Number(res.headers.get("Retry-After"));
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { status: res.status, data: data, retryMs: 1000 * Math.min(30, Math.max(1, wait || 2)) };
      });
    });
  }

  // The same request again after each 503 (the server's database busy), waiting as long as Retry-After says.
  function requestUntilServed(method, body, tries) {
    return request(method, body).then(function (res) {
      if (res.status !== 503 || tries <= 1) return res;
      status("Server busy: trying again", true);
      return new Promise(function (resolve) { window.setTimeout(resolve, res.retryMs); }).then(function () {
        return requestUntilServed(method, body, tries - 1);
      });
    });
  }

  function message(res) {
    var detail = res.data && res.data.detail;
    return typeof detail === "string" ? detail : "the workshop server answered " + res.status;
  }

  function flush() {
    if (sending || latest === null) return;
    var left = latest.responses.length - acked;
    if (left <= 0) {
      status("Stored on the server: " + acked + " of " + DATA.items.length, false);
      return;
    }
    sending = true;
    var r = latest.responses[acked];
    request("POST", {
      order: r.order, image_id: r.image_id, answer: r.answer,
      confidence: r.confidence === "" ? null : r.confidence, reading_seconds: r.reading_seconds
    }).then(function (res) {
      sending = false;
      if (res.status === 200 || res.status === 201) {
        acked += 1;
        retryMs = 1000;
        flush();
      } else if (res.status === 503) {
        status("Server busy: " + left + " answer" + (left > 1 ? "s" : "") + " waiting (kept in this browser)", true);
        window.setTimeout(flush, res.retryMs);
      } else {
        status("Not stored", true);
        fatal("The workshop server refused an answer: " + message(res) + ". Reload the page to continue.");
      }
    }, function () {
      sending = false;
      status("No network: " + left + " answer" + (left > 1 ? "s" : "") + " waiting (kept in this browser)", true);
      window.setTimeout(flush, retryMs);
      retryMs = Math.min(2 * retryMs, 15000);
    });
  }

  function fromServer(a) {
    return { order: a.order, image_id: a.image_id, answer: a.answer,
             confidence: a.confidence === null ? "" : a.confidence, reading_seconds: a.reading_seconds };
  }

  function resume(saved, fail) {
    fatal = fail;
    return requestUntilServed("GET", undefined, BUSY_TRIES).then(function (res) {
      if (res.status !== 200) throw new Error(message(res));
      var server = res.data.answers;
      var local = saved.responses;
      var agree = local.length >= server.length && server.every(function (a, k) {
        return local[k].image_id === a.image_id && local[k].answer === a.answer;
      });
      var responses = agree ? local : server.map(fromServer);
      acked = server.length;
      return { version: 1, package_id: DATA.package_id, session: DATA.session, reader: CFG.reader,
               responses: responses, finished: responses.length >= DATA.items.length };
    }, function () {
      throw new Error("the workshop server cannot be reached. Check the Wi-Fi connection and reload this page; " +
                      "no confirmed answer is lost");
    });
  }

  function push(state) {
    latest = state;
    flush();
  }

  function init() {
    var input = document.getElementById("reader-id");
    input.value = CFG.reader;
    input.readOnly = true;
    // Load every image of the session now (the server lets the browser cache them), so that a short loss of the
    // network during the session does not stop the reading.
    DATA.items.forEach(function (item) {
      Object.keys(item).forEach(function (k) {
        if (/file$/.test(k)) prefetched.push(Object.assign(new Image(), { src: item[k] }));
      });
    });
  }

  window.medadvRemote = { reader: CFG.reader, init: init, resume: resume, push: push };
}());
