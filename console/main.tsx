/** The console page's entry: bundled by scripts/console-assets.mjs into /assets/console.js. */
import { render } from 'preact';
import { App } from './app.js';
import './console.css';

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
