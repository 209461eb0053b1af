// Payloads and results on the wire: JSON by default, text, or bytes with a content type.

export const JSON_TYPE = "application/json";
export const TEXT_TYPE = "text/plain; charset=utf-8";
export const OCTETS_TYPE = "application/octet-stream";

/**
 * Bytes with a content type: a payload or result that is not JSON.
 * `client.submit("thumb", new Bytes(png, "image/png"))`, or `return new Bytes(data, "image/png")`
 * from a handler. A plain `Uint8Array` is sent as `application/octet-stream`.
 */
export class Bytes {
  constructor(
    readonly data: Uint8Array,
    readonly contentType: string = OCTETS_TYPE,
  ) {}
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Empty (the protocol's default), application/json, or any +json type. */
export function isJson(contentType: string): boolean {
  if (!contentType) return true;
  const base = contentType.split(";", 1)[0].trim().toLowerCase();
  return base === JSON_TYPE || base.endsWith("+json");
}

/** A value as bytes and a content type: Bytes and Uint8Array as they are, anything else as JSON. */
export function encode(value: unknown): { data: Uint8Array; contentType: string } {
  if (value instanceof Bytes) return { data: value.data, contentType: value.contentType || OCTETS_TYPE };
  if (value instanceof Uint8Array) return { data: value, contentType: OCTETS_TYPE };
  const text = JSON.stringify(value === undefined ? null : value, (_k, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number" && !Number.isFinite(v)) throw new TypeError(`${v} is not a JSON number`);
    return v;
  });
  return { data: encoder.encode(text), contentType: JSON_TYPE };
}

/** Bytes with a content type as a value: JSON parsed, text/* as a string, otherwise Bytes. */
export function decode(data: Uint8Array, contentType: string): unknown {
  if (isJson(contentType)) return data.length ? JSON.parse(decoder.decode(data)) : null;
  if (contentType.split(";", 1)[0].trim().toLowerCase().startsWith("text/")) return decoder.decode(data);
  return new Bytes(data, contentType);
}
