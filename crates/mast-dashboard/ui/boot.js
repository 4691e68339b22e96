// A classic (non-module) script that runs even when the page's modules cannot: if app.js has
// not started a few seconds after the page loaded (a module failed to load or parse), it says
// so in the banner instead of leaving a blank page.
(function () {
  function check() {
    if (window.mastStarted) return;
    var banner = document.getElementById('banner');
    if (!banner) return;
    var problem = document.createElement('div');
    problem.className = 'problem';
    problem.textContent = 'The dashboard\u2019s scripts did not start (see the browser console). Reload the page; if it persists, mastd may be serving a broken build.';
    banner.appendChild(problem);
    banner.hidden = false;
  }
  window.addEventListener('load', function () { setTimeout(check, 3000); });
})();
