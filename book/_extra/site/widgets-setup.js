// Loaded after require.js and before the ipywidgets embed manager on pages with widgets.
// 1. The embed manager finds its fonts next to the module it was loaded as: point that module
//    path at the copy this site serves, so nothing is fetched from elsewhere.
// 2. Widgets typeset their labels with the MathJax 2 call MathJax.Hub.Queue; the site runs
//    MathJax 3, so give it that one call.
(function () {
  var src = document.currentScript.src;
  var vendor = src.slice(0, src.lastIndexOf("/site/")) + "/vendor/widgets";
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": vendor } });
  document.addEventListener("DOMContentLoaded", function () {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = {
        Queue: function () {
          return window.MathJax.typesetPromise ? window.MathJax.typesetPromise() : null;
        },
      };
    }
  });
})();
