/**
 * The console's two HTML pages: the shell the app runs in (../../../console/,
 * bundled into /assets/console.js) and the login page an unauthenticated
 * visitor gets, with a 401 and nothing of the swarm in it. No inline script
 * or style: the Content-Security-Policy allows only the console's own files.
 */

/** Headers on every console response. */
export const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function appPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal console</title>
<link rel="stylesheet" href="/assets/console.css">
<script defer src="/assets/console.js"></script>
</head>
<body><main id="app"><p class="muted">Loading the swarm…</p></main></body>
</html>
`;
}

/** Says where the token is kept (the config key), not the file's path: a visitor learns nothing of the host. */
export function loginPage(error?: string): string {
  const message = error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal console: log in</title>
<link rel="stylesheet" href="/assets/console.css">
</head>
<body>
<main class="login">
<h1>Shoal console</h1>
<p>Admin access only: a client certificate with role admin, or the console's token.</p>
${message}
<form method="post" action="/login">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
<p class="muted">The token is in the file <code>console.tokenFile</code> on the scheduler's host, made at its first start; the scheduler prints that file's path when it starts. A link <code>/?token=TOKEN</code> logs in too.</p>
</main>
</body>
</html>
`;
}
