// svc-recon dashboard: the token comes from the URL fragment (#token=...),
// never sent to the server in the URL; every call is a bearer request.
(function () {
  'use strict';
  var params = new URLSearchParams(location.hash.slice(1));
  var token = params.get('token') || sessionStorage.getItem('tb_token') || '';
  if (token) sessionStorage.setItem('tb_token', token);
  function $(id) { return document.getElementById(id); }
  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); return e; }
  function api(method, path) {
    return fetch(path, { method: method, headers: { 'Authorization': 'Bearer ' + token } })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(r.status + ': ' + (j.error || '')); return j; }); });
  }
  function fail(e) { $('err').textContent = String(e.message || e); }
  function chart(batches) {
    var svg = $('chart'), ns = 'http://www.w3.org/2000/svg', w = 640, h = 180, pad = 24;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var bs = batches.slice().reverse(), max = 1;
    bs.forEach(function (b) { max = Math.max(max, b.published + b.format_errors); });
    var bw = bs.length ? (w - 2 * pad) / bs.length : 0;
    bs.forEach(function (b, i) {
      [['published', b.published, '#457b9d', 0], ['format errors', b.format_errors, '#e63946', b.published]].forEach(function (s) {
        var r = document.createElementNS(ns, 'rect'), hh = (h - 2 * pad) * s[1] / max;
        r.setAttribute('x', pad + i * bw + 2); r.setAttribute('width', Math.max(bw - 4, 1));
        r.setAttribute('y', h - pad - (h - 2 * pad) * (s[3] + s[1]) / max); r.setAttribute('height', hh);
        r.setAttribute('fill', s[2]);
        var t = document.createElementNS(ns, 'title'); t.textContent = b.batch + ' ' + s[0] + ': ' + s[1];
        r.appendChild(t); svg.appendChild(r);
      });
    });
  }
  function showBatch(id) {
    api('GET', '/batches/' + encodeURIComponent(id)).then(function (rep) {
      $('detail').hidden = false; $('bid').textContent = id;
      $('bstate').textContent = rep.clean ? 'clean' : 'unclean';
      $('bstate').className = rep.clean ? 'clean' : 'unclean';
      $('bcounts').textContent = Object.keys(rep.counts).map(function (k) { return k + ' ' + rep.counts[k]; }).join(' · ');
      var tb = $('disc').tBodies[0]; tb.textContent = '';
      (rep.discrepancies || []).forEach(function (d) {
        var tr = el('tr'); tr.className = 'rec';
        [d.id, d.key, d.dataset, d.verdict, d.stage + (d.sink ? ' / ' + d.sink : ''), d.detail || ''].forEach(function (v) { tr.appendChild(el('td', v == null ? '' : v)); });
        tb.appendChild(tr);
      });
      var b = $('replay'); b.hidden = !(rep.counts.missing > 0);
      b.onclick = function () {
        api('POST', '/replay?batch=' + encodeURIComponent(id)).then(function (r) {
          $('rmsg').textContent = 'replayed ' + r.published + ' of ' + r.wanted + ' (replay ' + r.replay_id + ')';
        }, function (e) { $('rmsg').textContent = String(e.message); });
      };
    }, fail);
  }
  api('GET', '/batches').then(function (j) {
    var tb = $('batches').tBodies[0];
    j.batches.forEach(function (b) {
      var tr = el('tr'), td = el('td'), a = el('a', b.batch);
      a.onclick = function () { showBatch(b.batch); }; td.appendChild(a); tr.appendChild(td);
      [b.datasets.join(', '), b.published, b.format_errors, b.events, new Date(b.last_event_ms).toISOString()].forEach(function (v) { tr.appendChild(el('td', v)); });
      tb.appendChild(tr);
    });
    chart(j.batches);
    if (params.get('batch')) showBatch(params.get('batch'));
  }, fail);
})();
