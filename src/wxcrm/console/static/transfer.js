// 导入导出: the upload's progress, and a file too large refused before it is sent.
// htmx posts the upload form (hx-boost) and reports the bytes sent as htmx:xhr:progress.
(function () {
  "use strict";

  function uploadForm(node) {
    return node && node.closest ? node.closest("[data-upload-form]") : null;
  }

  function show(form, loaded, total) {
    var status = form.querySelector("[data-upload-status]");
    var bar = form.querySelector("[data-upload-progress]");
    var label = form.querySelector("[data-upload-percent]");
    if (!status || !bar) return;
    status.hidden = false;
    var percent = total ? Math.min(100, Math.floor((loaded * 100) / total)) : 0;
    bar.value = percent;
    if (label) label.textContent = percent >= 100 ? "上传完成，正在检查…" : "上传中 " + percent + "%";
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = uploadForm(event.target);
    if (form) show(form, 0, 1);
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = uploadForm(event.target);
    var detail = event.detail || {};
    if (form && detail.lengthComputable) show(form, detail.loaded, detail.total);
  });

  // The server refuses a file over the limit too, in the words data-too-large holds; this
  // spares sending it first.
  document.addEventListener("submit", function (event) {
    var form = uploadForm(event.target);
    if (!form) return;
    var input = form.querySelector("input[type=file][data-max-bytes]");
    var error = form.querySelector("[data-upload-error]");
    if (!input || !error || !input.files || !input.files.length) return;
    var limit = Number(input.dataset.maxBytes);
    if (input.files[0].size <= limit) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    error.textContent = input.dataset.tooLarge;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "import-file-hint " + error.id);
    input.focus();
  }, true);
})();
