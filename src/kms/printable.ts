// Text a caller or an editor of the data folder chose (a key id, an encryption context, a trail
// line) on its way to a terminal: C0 and C1 controls (U+009B is a one-byte CSI on terminals that
// honour C1), DEL, and the bidi and format controls that reorder or hide what follows (U+202E
// reverses the rest of the line) are written as \uXXXX. The escape is also valid inside JSON
// strings, and no such character appears in JSON.stringify's output outside a string.

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** `text` with every control, bidi override and invisible format character as \uXXXX. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, escape);
}

/** `text` with every such character as "?" (a table cell: short, and its columns stay aligned). */
export function maskControls(text: string): string {
  return text.replace(CONTROLS, "?");
}

/** As escapeControls, but newlines stay (for whole lines of output: tables, indented JSON). */
export function escapeControlsButNewlines(text: string): string {
  return text.replace(CONTROLS_BUT_NEWLINE, escape);
}
