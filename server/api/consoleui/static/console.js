// The office console's only script: shows the fields of the chosen
// action. Everything works without it (forms post and the server
// answers with a page).
(function () {
  'use strict';
  function sync(form) {
    var action = form.querySelector('[name=action]').value;
    form.querySelectorAll('fieldset.only').forEach(function (fs) {
      fs.hidden = fs.getAttribute('data-for').split(' ').indexOf(action) < 0;
    });
  }
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-action-form]').forEach(function (form) {
      sync(form);
      form.querySelector('[name=action]').addEventListener('change', function () { sync(form); });
    });
    var err = document.querySelector('.error-summary');
    if (err) err.focus();
  });
})();
