// The faceprint web page: plain JavaScript over the /v1 API, no build step.
"use strict";
const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem("faceprint-key") || "";
const COLOURS = { match: "#0a7d32", uncertain: "#d08c00", no_match: "#b00020" };

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${apiKey}` } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, init);
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data && data.detail ? `${data.title}: ${data.detail}` : response.statusText);
  return data;
}

function showError(error) { $("error").textContent = error ? String(error.message || error) : ""; }
const collection = () => $("collections").value;

async function signIn() {
  apiKey = $("key").value.trim() || apiKey;
  try {
    const me = await api("GET", "/v1/me");
    sessionStorage.setItem("faceprint-key", apiKey);
    $("who").textContent = `tenant ${me.tenant} · ${me.scopes.join(", ")}`;
    $("signin-panel").hidden = true;
    $("app").hidden = false;
    $("signin-error").textContent = "";
    await loadCollections();
  } catch (error) { $("signin-error").textContent = error.message; }
}

async function loadCollections(selected) {
  const { collections } = await api("GET", "/v1/collections");
  $("collections").innerHTML = collections.map((c) => `<option>${c}</option>`).join("");
  if (selected) $("collections").value = selected;
  await loadPeople();
}

async function loadPeople() {
  $("people").innerHTML = "";
  if (!collection()) { $("collection-info").textContent = "No collection yet: create one."; return; }
  const info = await api("GET", `/v1/collections/${collection()}`);
  const point = info.identification.point;
  $("collection-info").textContent =
    `${info.people} people, ${info.templates} photos, model ${info.model_id}; strangers named at most ` +
    `${point.fpir * 100}% of the time (FPIR)` + (info.thumbnails ? "; face thumbnails kept" : "");
  const page = await api("GET", `/v1/collections/${collection()}/people?limit=500`);
  for (const person of page.items) {
    const row = document.createElement("tr");
    row.innerHTML = `<td class="face"></td><td class="name"></td><td>${person.template_count}</td>` +
      `<td><button class="delete" data-person="${person.id}">Delete</button></td>`;
    row.querySelector(".name").textContent = person.name;
    row.querySelector("button").onclick = () => run(async () => {
      await api("DELETE", `/v1/collections/${collection()}/people/${person.id}`);
      await loadPeople();
    });
    $("people").appendChild(row);
    if (info.thumbnails && person.template_count) showThumbnail(row.querySelector(".face"), person.id);
  }
}

async function showThumbnail(cell, personId) {
  // An <img src> cannot send the key: fetched, then shown from a blob.
  const response = await fetch(`/v1/collections/${collection()}/people/${personId}/thumbnail`,
    { headers: { Authorization: `Bearer ${apiKey}` } });
  if (!response.ok) return;
  const image = document.createElement("img");
  image.src = URL.createObjectURL(await response.blob());
  image.alt = "face";
  image.className = "thumbnail";
  cell.appendChild(image);
}

async function createCollection() {
  const name = $("new-collection").value.trim();
  await api("POST", "/v1/collections", { name, thumbnails: $("new-thumbnails").checked });
  $("new-collection").value = "";
  await loadCollections(name);
}

async function enroll() {
  const files = [...$("enroll-files").files];
  if (webcamShot) files.push(webcamShot);
  const name = $("enroll-name").value.trim();
  if (!name || !files.length) throw new Error("give a name and at least one photo");
  const page = await api("GET", `/v1/collections/${collection()}/people?limit=500`);
  const known = page.items.find((p) => p.name.toLowerCase() === name.toLowerCase());
  const person = known || await api("POST", `/v1/collections/${collection()}/people`, { name });
  const form = new FormData();
  files.forEach((file) => form.append("images", file));
  const added = await api("POST", `/v1/collections/${collection()}/people/${person.id}/faces`, form);
  const refused = added.refused.map((r) => `${r.image}: ${r.reason}`).join("; ");
  $("enroll-result").textContent = `${added.person.name}: ${added.added.length} photo(s) added` +
    (refused ? `; refused ${refused}` : "");
  webcamShot = null;
  await loadPeople();
}

async function recognize() {
  const file = $("recognize-file").files[0];
  if (!file) throw new Error("choose a photo");
  const form = new FormData();
  form.append("image", file);
  const answer = await api("POST", `/v1/collections/${collection()}/recognize`, form);
  const image = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = $("canvas");
  const scale = Math.min(1, 900 / image.width);
  canvas.width = image.width * scale;
  canvas.height = image.height * scale;
  const draw = canvas.getContext("2d");
  draw.drawImage(image, 0, 0, canvas.width, canvas.height);
  const textSize = Math.max(16, canvas.width / 30);
  draw.font = `bold ${textSize}px system-ui`;
  draw.lineWidth = 3;
  $("recognize-result").innerHTML = "";
  for (const face of answer.faces) {
    const [left, top, right, bottom] = face.face.box.map((v) => v * scale);
    draw.strokeStyle = draw.fillStyle = COLOURS[face.decision];
    draw.strokeRect(left, top, right - left, bottom - top);
    const labelTop = Math.max(0, top - textSize - 8);
    draw.fillRect(left - 1.5, labelTop, draw.measureText(face.name).width + 10, textSize + 8);
    draw.fillStyle = "#fff";
    draw.fillText(face.name, left + 4, labelTop + textSize);
    const item = document.createElement("li");
    item.className = face.decision;
    item.textContent = `${face.name} — ${face.decision}` + (face.reason ? ` (${face.reason})` : "") +
      `, decided at FPIR ${face.fpir}`;
    $("recognize-result").appendChild(item);
  }
  canvas.dataset.names = answer.faces.map((f) => f.name).join("|");
}

async function verify() {
  const [a, b] = [$("verify-a").files[0], $("verify-b").files[0]];
  if (!a || !b) throw new Error("choose two photos");
  const form = new FormData();
  form.append("a", a);
  form.append("b", b);
  const result = await api("POST", "/v1/verify", form);
  $("verify-result").className = result.decision;
  // A key capped below scores gets a band, or the decision alone (faceprint apikeys create --disclose).
  const evidence = result.similarity !== null
    ? `similarity ${result.similarity}, estimated FMR ${result.estimated_fmr.toExponential(1)}, `
    : result.band ? `similarity band ${result.band}, ` : "";
  $("verify-result").textContent = (result.match ? "Same person" : "Different people") +
    ` (${result.decision}; ${evidence}decided at FMR ${result.operating_fmr})`;
}

let webcamShot = null;
async function webcam() {
  const video = $("video");
  if (video.hidden) {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
    video.hidden = false;
    $("webcam").textContent = "Take the photo";
    return;
  }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  webcamShot = new File([await new Promise((done) => canvas.toBlob(done, "image/jpeg", 0.95))], "webcam.jpg");
  video.srcObject.getTracks().forEach((track) => track.stop());
  video.hidden = true;
  $("webcam").textContent = "Use the webcam";
  $("enroll-result").textContent = "webcam photo taken: enroll to add it";
}

async function run(action) {
  showError(null);
  try { await action(); } catch (error) { showError(error); }
}

$("signin").onclick = () => signIn();
$("collections").onchange = () => run(loadPeople);
$("create-collection").onclick = () => run(createCollection);
$("enroll").onclick = () => run(enroll);
$("recognize").onclick = () => run(recognize);
$("verify").onclick = () => run(verify);
$("webcam").onclick = () => run(webcam);
if (apiKey) signIn();
