// Coffer console: the only script (served from our origin; the CSP forbids inline script).
// - forms with data-confirm ask before submitting;
// - the upload form streams the file to the console with a progress bar.
"use strict";

document.addEventListener("submit", function (ev) {
  var f = ev.target;
  var msg = f.getAttribute && f.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});

function setupUpload() {
  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = document.getElementById("upload-file");
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = input.files && input.files[0];
    if (!file) {
      status.textContent = "Choose a file first.";
      return;
    }
    var bucket = form.getAttribute("data-bucket");
    var prefix = form.getAttribute("data-prefix") || "";
    var key = prefix + file.name;
    var url = "/console/s3/upload/" + encodeURIComponent(bucket) + "?key=" + encodeURIComponent(key);
    var xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("X-Csrf-Token", form.querySelector("input[name=csrf]").value);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    var enc = document.getElementById("upload-encryption").value;
    if (enc) xhr.setRequestHeader("X-Coffer-Encryption", enc);
    var kmsKey = document.getElementById("upload-kms-key");
    if (enc === "aws:kms" && kmsKey && kmsKey.value) xhr.setRequestHeader("X-Coffer-Kms-Key", kmsKey.value);
    bar.value = 0;
    status.textContent = "Uploading " + key + "…";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        bar.value = 100;
        status.textContent = "Upload succeeded";
        var list = document.getElementById("objects");
        if (list) list.setAttribute("data-stale", "true");
        window.setTimeout(function () { window.location.reload(); }, 600);
      } else {
        status.textContent = xhr.responseText || ("Upload failed: HTTP " + xhr.status);
      }
    });
    xhr.addEventListener("error", function () {
      status.textContent = "Upload failed: the connection was lost.";
    });
    xhr.send(file);
  });
}

document.addEventListener("DOMContentLoaded", setupUpload);
