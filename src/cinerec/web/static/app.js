// cinerec web page: the movie buttons without a full reload. Every button is a plain form
// that works without this script; with it, the form is sent with fetch and the "For you"
// list is swapped for the next one, which is made from what was just said.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

function say(text) {
  const status = document.getElementById("status");
  status.textContent = text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { status.textContent = ""; }, 4000);
}

async function call(url, options) {
  const response = await fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrf(), ...(options || {}).headers },
  });
  if (response.redirected && new URL(response.url).pathname.endsWith("/signin")) {
    window.location.assign(response.url);  // the session ended
    throw new Error("signed out");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

async function refreshForYou() {
  const box = document.getElementById("for-you");
  if (!box) return;
  box.setAttribute("aria-busy", "true");
  const response = await call(box.dataset.src || "/web/fragments/for-you");
  box.innerHTML = await response.text();
  box.removeAttribute("aria-busy");
}

function titleOf(form) {
  const card = form.closest("[data-movie-id]");
  const title = card && card.querySelector(".title");
  return title ? title.textContent : "this movie";
}

async function showSimilar(form) {
  // The similar movies open as a full-width row right after the card (and close again).
  const card = form.closest("[data-movie-id]");
  const button = form.querySelector("button");
  const open = card.nextElementSibling;
  if (open && open.classList.contains("similar-row")) {
    open.remove();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  const response = await call(form.action + "?fragment=true");
  const row = document.createElement("li");
  row.className = "similar-row";
  row.innerHTML = await response.text();
  card.after(row);
  button.setAttribute("aria-expanded", "true");
  say("More like " + titleOf(form) + " below it");
}

async function act(form) {
  const action = form.dataset.action;
  const card = form.closest("[data-movie-id]");
  const id = card.dataset.movieId;
  const title = titleOf(form);
  await call(form.action, { method: "POST", body: new FormData(form) });
  if (action === "not-interested") {
    document.querySelectorAll("[data-movie-id]").forEach((el) => {
      if (el.dataset.movieId === id) el.remove();
    });
    say("You will not see " + title + " again");
  } else {
    const other = action === "like" ? "dislike" : "like";
    form.querySelector("button").setAttribute("aria-pressed", "true");
    const twin = card.querySelector('form[data-action="' + other + '"] button');
    if (twin) twin.setAttribute("aria-pressed", "false");
    say((action === "like" ? "Liked " : "Disliked ") + title + ": your list is updated");
  }
  await refreshForYou();
}

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-action]");
  if (!form) return;
  event.preventDefault();
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    if (form.dataset.action === "similar") await showSimilar(form);
    else await act(form);
  } catch (error) {
    if (error.message !== "signed out") say("Could not do that: " + error.message);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
});
