// The page registry: every view of the UI is a Page, routed by the URL hash (#/<id>/<params>).
//
// Jobs pages sit in the main navigation. Other features add themselves to the separate
// extension slot (slot: "ext") with one `registerPage(...)` line in main.ts — the Chat page
// lives in src/chat/ and registers there.

export interface Page {
  /** Route segment: the page is shown for `#/<id>` and `#/<id>/<params...>`. */
  id: string;
  /** Navigation label. */
  title: string;
  /** "main" (jobs pages) or "ext" (the separated extension slot, e.g. Chat). */
  slot?: "main" | "ext";
  /** Renders into `root`; returns a cleanup function run when the page is left (close streams). */
  render(root: HTMLElement, params: string[]): void | (() => void);
}

export const pages: Page[] = [];

export function registerPage(page: Page): void {
  pages.push(page);
}
