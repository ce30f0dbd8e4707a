// The page with JavaScript: the story is asked for as server-sent events and shown as it is written; the
// photo stays chosen, so "Another story" (a new seed) and another genre need no new upload. Without
// JavaScript the form posts to /story and the server answers with the finished page.
const form = document.getElementById('form'), input = document.getElementById('image');
const drop = document.getElementById('drop'), preview = document.getElementById('preview');
const story = document.getElementById('story'), seen = document.getElementById('seen');
const again = document.getElementById('again'), go = document.getElementById('go');
const show = (id, text) => { document.getElementById(id).textContent = text; };
// Times of the last request, from the click: read by the browser test.
window.storyTimings = null;
input.hidden = true; input.required = false;
drop.classList.add('scripted');
function chosen(file) {
  if (!file) return;
  // Shown only once decoded, so the form below moves once, before it can be clicked, not under the pointer.
  preview.style.display = 'none';
  preview.onload = () => { preview.style.display = 'block'; };
  preview.src = URL.createObjectURL(file);
  again.hidden = true;
}
drop.addEventListener('click', e => { if (e.target !== input) input.click(); });
input.addEventListener('change', () => chosen(input.files[0]));
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => {
  e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; chosen(input.files[0]); }
});
// One server-sent event block: its name and its JSON data.
function parseEvent(block) {
  let name = 'message', data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
  }
  return { name, data: data ? JSON.parse(data) : null };
}
function showCaptions(captions) {
  const list = document.getElementById('captions');
  list.replaceChildren();
  for (const caption of captions) {
    if (!caption.text) continue;
    const item = document.createElement('li');
    item.textContent = caption.text;
    list.appendChild(item);
  }
  seen.hidden = false;
}
// The written caption's attention picture (a base64 PNG), shown through a blob: URL, which the CSP allows.
function showAttention(png) {
  const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
  const picture = document.getElementById('attention');
  if (picture.src) URL.revokeObjectURL(picture.src);
  picture.src = URL.createObjectURL(new Blob([bytes], { type: 'image/png' }));
  picture.hidden = false;
}
async function write(seed) {
  if (!input.files.length) { show('error', 'Choose a photo first.'); return; }
  show('error', ''); story.textContent = ''; seen.hidden = true; show('keywords', '');
  document.getElementById('attention').hidden = true;
  const body = new FormData();
  body.append('image', input.files[0]);
  body.append('genre', document.getElementById('genre').value);
  body.append('seed', String(seed));
  form.classList.add('busy'); go.disabled = true; again.disabled = true;
  const started = performance.now(), timings = { captions_ms: null, first_text_ms: null, done_ms: null, texts: 0 };
  window.storyTimings = timings;
  const since = () => Math.round(performance.now() - started);
  try {
    const response = await fetch('/api/story', { method: 'POST', body, headers: { Accept: 'text/event-stream' } });
    if (!response.ok) {
      const data = await response.json().catch(() => ({ error: 'The server sent an unreadable answer.' }));
      show('error', data.error || ('Error ' + response.status));
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '', ended = false;
    while (!ended) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, '\n');
      let at;
      while ((at = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (!block.trim() || block.startsWith(':')) continue;
        const { name, data } = parseEvent(block);
        if (name === 'captions') { timings.captions_ms = since(); showCaptions(data.captions); }
        else if (name === 'attention') showAttention(data.png);
        else if (name === 'keywords') show('keywords', data.keywords.join(', '));
        else if (name === 'text') {
          if (timings.first_text_ms === null) timings.first_text_ms = since();
          timings.texts += 1;
          story.classList.add('writing'); story.textContent = data.text;
        } else if (name === 'story') {
          timings.done_ms = since();
          story.textContent = data.story; show('keywords', data.keywords.join(', '));
          again.hidden = false; ended = true;
        } else if (name === 'error') { show('error', data.error); ended = true; }
      }
    }
    if (!ended) show('error', 'The connection ended before the story did; try again.');
  } catch (err) {
    show('error', 'Cannot reach the server: ' + err.message);
  } finally {
    story.classList.remove('writing');
    form.classList.remove('busy'); go.disabled = false; again.disabled = false;
  }
}
form.addEventListener('submit', e => { e.preventDefault(); write(0); });
again.addEventListener('click', () => write(Math.floor(Math.random() * 1e9)));
