// Minimal client for the pserv sample API.
async function refresh() {
  const r = await fetch('/api/login');
  document.getElementById('status').textContent = await r.text();
  const v = await (await fetch('/api/video')).json();
  const ul = document.getElementById('videos');
  ul.innerHTML = '';
  for (const f of v) {
    const li = document.createElement('li');
    li.textContent = f.name + ' (' + f.size + ' bytes)';
    li.onclick = () => { document.getElementById('player').src = '/' + f.name; };
    ul.appendChild(li);
  }
}
document.getElementById('login').onsubmit = async (e) => {
  e.preventDefault();
  const fd = new FormData(e.target);
  await fetch('/api/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: fd.get('username'), password: fd.get('password') }),
  });
  refresh();
};
document.getElementById('logout').onclick = async () => {
  await fetch('/api/logout', { method: 'POST' });
  refresh();
};
refresh();
