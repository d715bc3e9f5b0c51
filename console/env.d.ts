/** The style sheet main.tsx imports: esbuild bundles it into /assets/console.css. */
declare module '*.css';
