/** The preheat form's text, read (pure, tested in test/console-unit.test.ts). */

/** "URL [sha256:…]" lines → the request's entries; blank lines are skipped. */
export function parsePreheatLines(text: string): Array<{ url: string; digest?: string }> {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [url = '', digest] = line.split(/\s+/);
      return digest === undefined ? { url } : { url, digest };
    });
}
