// Page behaviour without inline script (the Content-Security-Policy forbids it).

// Forms inside a caseworker page (#page.parcours-page): an error answer (4xx/5xx) is shown in
// place, as the whole page when it is one, else inside #contenu.
document.addEventListener("htmx:beforeSwap", function (event) {
  var target = event.target;
  if (!(target instanceof Element) || !target.closest("#page.parcours-page")) return;
  var d = event.detail;
  if (d.xhr.status >= 400) {
    d.shouldSwap = true;
    d.isError = false;
    if (!d.serverResponse.includes('id="page"')) {
      d.target = document.getElementById("contenu");
      d.selectOverride = "#contenu";
    }
  }
});

// Buttons and links: data-print prints the page, data-back goes back.
document.addEventListener("click", function (event) {
  var target = event.target;
  if (!(target instanceof Element)) return;
  if (target.closest("[data-print]")) {
    window.print();
  } else if (target.closest("[data-back]") && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
