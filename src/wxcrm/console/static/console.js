// The few behaviours HTML and htmx do not give: dialogs, toasts and row selection.
// Pages carry no inline script (the CSP forbids it); they mark elements with data-* attributes.
(function () {
  "use strict";

  // A toast: the server's message after an action, from HX-Trigger
  // {"toast": {"message": "…", "tone": "success" | "error"}} (routing.toast) or from a page
  // rendered with <p data-toast>…</p> (the flash after a plain form's redirect).
  function toast(message, tone) {
    if (!message) return;
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = document.createElement("p");
    item.className = "toast-item toast-" + (tone || "success");
    item.setAttribute("role", tone === "error" ? "alert" : "status");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 4000);
  }
  document.body.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    toast(detail.message, detail.tone);
  });

  function init(root) {
    root.querySelectorAll("[data-toast]").forEach(function (node) {
      toast(node.textContent.trim(), node.dataset.toast || "success");
      node.remove();
    });
    // A dialog that a page renders already open (a refused form shown again).
    var dialogs = Array.prototype.slice.call(root.querySelectorAll("dialog[data-open-on-load]"));
    if (root.matches && root.matches("dialog[data-open-on-load]")) dialogs.push(root);
    dialogs.forEach(function (dialog) {
      if (!dialog.open) dialog.showModal();
    });
    updateSelection(root);
  }

  // <button data-open-dialog="id" data-customer="…"> opens <dialog id="id">; the button's
  // data-fill-* values go into the dialog's fields named by the rest of the attribute.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.openDialog);
      if (!dialog) return;
      event.preventDefault();
      Object.keys(opener.dataset).forEach(function (key) {
        if (key.indexOf("fill") !== 0 || key.length <= 4) return;
        var name = key.charAt(4).toLowerCase() + key.slice(5);
        dialog.querySelectorAll('[data-fill="' + name + '"]').forEach(function (field) {
          if ("value" in field && field.tagName !== "BUTTON") field.value = opener.dataset[key];
          else field.textContent = opener.dataset[key];
        });
      });
      dialog.showModal();
      var first = dialog.querySelector("[autofocus], input:not([type=hidden]), select, textarea");
      if (first) first.focus();
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) open.close();
    }
  });

  // Row selection: [data-select-all] ticks every [data-row-select] in its table; the batch bar
  // ([data-batch-bar]) shows while any row is ticked and copies the ticked ids into its forms.
  function updateSelection(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-batch-bar]").forEach(function (bar) {
      var scope = document.getElementById(bar.dataset.batchBar) || document;
      var ticked = Array.prototype.filter.call(
        scope.querySelectorAll("[data-row-select]"), function (box) { return box.checked; });
      bar.hidden = ticked.length === 0;
      bar.querySelectorAll("[data-selected-count]").forEach(function (node) {
        node.textContent = String(ticked.length);
      });
      bar.ownerDocument.querySelectorAll("[data-selected-ids]").forEach(function (holder) {
        holder.innerHTML = "";
        ticked.forEach(function (box) {
          var input = document.createElement("input");
          input.type = "hidden";
          input.name = holder.dataset.selectedIds || "ids";
          input.value = box.value;
          holder.appendChild(input);
        });
      });
    });
  }
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-select-all]");
    if (all) {
      var table = all.closest("table") || document;
      table.querySelectorAll("[data-row-select]").forEach(function (box) { box.checked = all.checked; });
    }
    if (all || event.target.closest("[data-row-select]")) updateSelection(document);
  });

  // htmx clones the body into its history cache; cloning an element with a style attribute
  // is refused by the page's CSP. Chromium leaves an empty one on inputs it has looked at
  // (autofill): it holds nothing, so it goes.
  document.addEventListener("htmx:beforeHistorySave", function () {
    document.querySelectorAll('[style=""]').forEach(function (element) {
      element.removeAttribute("style");
    });
  });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
  document.addEventListener("htmx:beforeSwap", function (event) {
    // A dialog's form answered with success: close the dialog before the page changes.
    // detail.elt is the swap target by now; the element that sent the request is requestConfig's.
    var sender = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (event.detail.xhr.status < 300 && sender && sender.closest) {
      var dialog = sender.closest("dialog");
      if (dialog && dialog.open && !event.detail.target.closest("dialog")) dialog.close();
    }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
})();
