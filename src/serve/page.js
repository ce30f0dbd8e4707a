const form = document.getElementById('form'), input = document.getElementById('image');
const drop = document.getElementById('drop'), preview = document.getElementById('preview');
const show = (id, text) => { document.getElementById(id).textContent = text; };
fetch('/api/genres').then(r => r.json()).then(data => {
  const select = document.getElementById('genre');
  for (const genre of data.genres) { const option = document.createElement('option'); option.value = option.textContent = genre; select.appendChild(option); }
}).catch(() => show('error', 'Cannot reach the server.'));
function chosen(file) {
  if (!file) return;
  // Shown only once decoded, so the form below moves once, before it can be clicked, not under the pointer.
  preview.style.display = 'none';
  preview.onload = () => { preview.style.display = 'block'; };
  preview.src = URL.createObjectURL(file);
}
drop.addEventListener('click', () => input.click());
input.addEventListener('change', () => chosen(input.files[0]));
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => {
  e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; chosen(input.files[0]); }
});
form.addEventListener('submit', async e => {
  e.preventDefault();
  show('error', ''); show('story', ''); show('captions', '');
  if (!input.files.length) { show('error', 'Choose a photo first.'); return; }
  const body = new FormData();
  body.append('image', input.files[0]);
  body.append('genre', document.getElementById('genre').value);
  form.classList.add('busy'); document.getElementById('go').disabled = true;
  try {
    const response = await fetch('/api/story', { method: 'POST', body });
    const data = await response.json().catch(() => ({ error: 'The server sent an unreadable answer.' }));
    if (!response.ok) { show('error', data.error || ('Error ' + response.status)); return; }
    show('story', data.story);
    const texts = data.captions.map(c => c.text).filter(Boolean);
    if (texts.length) show('captions', 'From the captions: ' + texts.join(' · '));
  } catch (err) {
    show('error', 'Cannot reach the server: ' + err.message);
  } finally {
    form.classList.remove('busy'); document.getElementById('go').disabled = false;
  }
});
