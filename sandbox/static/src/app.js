// SwipeSavvy frontend (sandbox build): lists campaigns once a token is stored by the login form.
(function () {
  "use strict";
  var token = window.sessionStorage.getItem("swipesavvy.token");
  if (!token) { return; }
  fetch("/api/campaigns", { headers: { Authorization: "Bearer " + token } })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
    .then(function (body) {
      var list = document.createElement("ul");
      body.campaigns.forEach(function (c) {
        var item = document.createElement("li");
        item.textContent = c.name + " (" + c.status + ")";
        list.appendChild(item);
      });
      var section = document.getElementById("campaigns");
      section.replaceChildren(list);
    })
    .catch(function () { window.sessionStorage.removeItem("swipesavvy.token"); });
})();
